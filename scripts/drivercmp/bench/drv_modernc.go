//go:build modernc

package main

import _ "modernc.org/sqlite"

const sqlDriver = "sqlite"

func init() { driverName = "modernc" }

func dsn(path string) string { return path }
