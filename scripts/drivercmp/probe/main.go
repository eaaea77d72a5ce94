// Command probe is the smallest program that opens a database through one
// driver (chosen by build tag: modernc, ncruces, mattn; none links no
// driver). The orchestrator cross-compiles it to check each driver's build
// constraints and to measure the binary size a driver adds.
package main

import (
	"database/sql"
	"fmt"
	"os"
)

func main() {
	if driverName == "" {
		fmt.Println("(no driver)")
		return
	}
	db, err := sql.Open(driverName, os.Args[0]+".db")
	if err != nil {
		panic(err)
	}
	defer db.Close()
	var v string
	if err := db.QueryRow(`SELECT sqlite_version()`).Scan(&v); err != nil {
		panic(err)
	}
	fmt.Println(v)
}
