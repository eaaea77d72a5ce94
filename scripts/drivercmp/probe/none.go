//go:build !modernc && !ncruces && !mattn

package main

const driverName = ""
