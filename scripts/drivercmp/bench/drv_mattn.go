//go:build mattn

package main

import _ "github.com/mattn/go-sqlite3"

const sqlDriver = "sqlite3"

func init() { driverName = "mattn" }

func dsn(path string) string { return path }
