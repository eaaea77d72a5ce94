// Package report is the one JSON line a bench run prints and the runner
// reads back.
package report

// Result is one bench run: a driver, an API and a variant in one round.
type Result struct {
	Driver        string  `json:"driver"`
	API           string  `json:"api"`
	Variant       string  `json:"variant"`
	Round         int     `json:"round"`
	Publishes     int     `json:"publishes"`
	Commits       int     `json:"commits"`
	CPUus         float64 `json:"cpu_us"`  // user+sys CPU per publish
	UserUs        float64 `json:"user_us"` // user CPU per publish
	SysUs         float64 `json:"sys_us"`  // sys CPU per publish
	WallUs        float64 `json:"wall_us"` // wall time per publish
	Allocs        float64 `json:"allocs"`  // Go heap allocations per publish
	Bytes         float64 `json:"bytes"`   // Go heap bytes per publish
	MaxRSSKiB     int64   `json:"max_rss_kib"`
	SQLiteVersion string  `json:"sqlite_version"`
	GoVersion     string  `json:"go_version"`
	CGO           bool    `json:"cgo"`
	Error         string  `json:"error,omitempty"`
}
