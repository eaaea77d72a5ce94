// Command drivercmp compares SQLite drivers on Herald's unicast publish
// write path (issue 14) and checks each driver's build constraints.
//
//	cd scripts/drivercmp && go run .
//
// It builds ./bench once per driver (build tags modernc, ncruces, mattn;
// none: the harness alone), runs the builds round-robin, one process per
// run, and prints a Markdown table of medians and spreads; then it
// cross-compiles ./probe for each driver and target with CGO_ENABLED=0. See
// README.md.
package main

import (
	"bytes"
	"cmp"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/heraldhq/herald/scripts/drivercmp/report"
)

// A config is one driver and API to measure.
type config struct{ driver, api string }

func (c config) String() string {
	if c.api == "sql" {
		return c.driver
	}
	return c.driver + " (" + c.api + ")"
}

func main() {
	rounds := flag.Int("rounds", 5, "rounds; each round runs every driver × variant once")
	n := flag.Int("n", 20000, "measured publishes per run")
	warmup := flag.Int("warmup", 2000, "warm-up publishes per run")
	drivers := flag.String("drivers", "modernc,ncruces,ncruces/native,mattn,none", "configs to measure: driver or driver/api")
	variants := flag.String("variants", "b1,b32,multi32", "variants to measure")
	builds := flag.Bool("builds", true, "check build constraints and binary sizes (cross-compiles)")
	bench := flag.Bool("bench", true, "run the benchmark")
	out := flag.String("out", "results", "directory for results.jsonl and results.md")
	from := flag.String("from", "", "only render the table of an earlier results.jsonl (no runs, no builds)")
	flag.Parse()

	var configs []config
	for _, s := range strings.Split(*drivers, ",") {
		d, api, _ := strings.Cut(strings.TrimSpace(s), "/")
		configs = append(configs, config{d, cmp.Or(api, "sql")})
	}
	if *from != "" {
		all, err := readResults(*from)
		if err != nil {
			fail(err)
		}
		fmt.Print(renderBench(all, configs, strings.Split(*variants, ",")))
		return
	}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		fail(err)
	}
	tmp, err := os.MkdirTemp("", "drivercmp-bin-")
	if err != nil {
		fail(err)
	}
	defer os.RemoveAll(tmp)

	var md bytes.Buffer
	fmt.Fprintf(&md, "# drivercmp results\n\n%s, %s/%s, %d CPUs, %s\n\n", time.Now().UTC().Format(time.RFC3339),
		runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), runtime.Version())
	if *bench {
		table, err := runBench(tmp, *out, configs, strings.Split(*variants, ","), *rounds, *n, *warmup)
		if err != nil {
			fail(err)
		}
		md.WriteString(table)
	}
	if *builds {
		table := runBuilds(tmp)
		md.WriteString(table)
	}
	fmt.Print(md.String())
	if err := os.WriteFile(filepath.Join(*out, "results.md"), md.Bytes(), 0o644); err != nil {
		fail(err)
	}
}

func readResults(path string) ([]report.Result, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var all []report.Result
	for line := range strings.Lines(string(b)) {
		var r report.Result
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		all = append(all, r)
	}
	return all, nil
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "drivercmp:", err)
	os.Exit(1)
}

func goBuild(env []string, args ...string) (string, error) {
	cmd := exec.Command("go", append([]string{"build"}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	b, err := cmd.CombinedOutput()
	return strings.TrimSpace(string(b)), err
}

func runBench(tmp, out string, configs []config, variants []string, rounds, n, warmup int) (string, error) {
	bins := map[string]string{}
	for _, c := range configs {
		if _, ok := bins[c.driver]; ok {
			continue
		}
		bin := filepath.Join(tmp, "bench-"+c.driver)
		fmt.Fprintf(os.Stderr, "building bench for %s…\n", c.driver)
		// The pure Go drivers are built as a release would build them.
		env := []string{"CGO_ENABLED=0"}
		if c.driver == "mattn" {
			env = []string{"CGO_ENABLED=1"}
		}
		if msg, err := goBuild(env, "-tags", c.driver, "-o", bin, "./bench"); err != nil {
			return "", fmt.Errorf("build %s: %v\n%s", c.driver, err, msg)
		}
		bins[c.driver] = bin
	}
	jf, err := os.Create(filepath.Join(out, "results.jsonl"))
	if err != nil {
		return "", err
	}
	defer jf.Close()

	var all []report.Result
	start := time.Now()
	for r := 1; r <= rounds; r++ {
		for _, v := range variants {
			// Round-robin, the order rotated every round so that no driver
			// always runs right after the same neighbour.
			for i := range configs {
				c := configs[(i+r)%len(configs)]
				cmd := exec.Command(bins[c.driver], "-api", c.api, "-variant", v, "-round", fmt.Sprint(r),
					"-n", fmt.Sprint(n), "-warmup", fmt.Sprint(warmup))
				cmd.Stderr = os.Stderr
				b, err := cmd.Output()
				var res report.Result
				if jerr := json.Unmarshal(bytes.TrimSpace(b), &res); jerr != nil {
					return "", fmt.Errorf("%s %s: %v: %s", c, v, cmp.Or(err, jerr), b)
				}
				_, _ = jf.Write(b)
				if res.Error != "" {
					return "", fmt.Errorf("%s %s: %s", c, v, res.Error)
				}
				fmt.Fprintf(os.Stderr, "[%s] round %d/%d %-8s %-18s cpu %7.1f µs  wall %7.1f µs  allocs %5.1f\n",
					time.Since(start).Round(time.Second), r, rounds, v, c, res.CPUus, res.WallUs, res.Allocs)
				all = append(all, res)
			}
		}
	}

	return renderBench(all, configs, variants), nil
}

// renderBench is the Markdown table of results: per config and variant, the
// median and range over rounds, and the CPU relative to modernc, the median
// of the per-round ratios (runs of one round and variant ran back to back,
// under the same load).
func renderBench(all []report.Result, configs []config, variants []string) string {
	type key struct {
		c config
		v string
	}
	results := map[key][]report.Result{}
	byRound := map[string]float64{} // "variant/round" -> modernc CPU
	rounds := map[int]bool{}
	n := 0
	for _, r := range all {
		k := key{config{r.Driver, r.API}, r.Variant}
		results[k] = append(results[k], r)
		if r.Driver == "modernc" && r.API == "sql" {
			byRound[fmt.Sprint(r.Variant, "/", r.Round)] = r.CPUus
		}
		rounds[r.Round] = true
		n = r.Publishes
	}
	var b strings.Builder
	fmt.Fprintf(&b, "## Unicast publish write path, per publish\n\n")
	fmt.Fprintf(&b, "%d rounds; each run: its own process, fresh database, warm-up, then %d measured publishes; 10,000 users.\n", len(rounds), n)
	fmt.Fprintf(&b, "CPU = getrusage user+sys of the process (writer + checkpointer + GC) ÷ publishes; median (min–max) over rounds. ")
	fmt.Fprintf(&b, "÷ modernc: median over rounds of CPU ÷ modernc's CPU in the same round.\n\n")
	fmt.Fprintf(&b, "| driver | variant | CPU µs | ÷ modernc | user / sys µs | wall µs | Go allocs | Go bytes | SQLite |\n")
	fmt.Fprintf(&b, "|---|---|---|---|---|---|---|---|---|\n")
	for _, v := range variants {
		for _, c := range configs {
			rs := results[key{c, v}]
			if len(rs) == 0 {
				continue
			}
			cpu := stats(rs, func(r report.Result) float64 { return r.CPUus })
			wall := stats(rs, func(r report.Result) float64 { return r.WallUs })
			usr := stats(rs, func(r report.Result) float64 { return r.UserUs })
			sys := stats(rs, func(r report.Result) float64 { return r.SysUs })
			allocs := stats(rs, func(r report.Result) float64 { return r.Allocs })
			byts := stats(rs, func(r report.Result) float64 { return r.Bytes })
			var ratios []report.Result
			for _, r := range rs {
				if m, ok := byRound[fmt.Sprint(r.Variant, "/", r.Round)]; ok && m > 0 {
					ratios = append(ratios, report.Result{CPUus: r.CPUus / m})
				}
			}
			rel := "–"
			if len(ratios) > 0 && c.driver != "none" {
				st := stats(ratios, func(r report.Result) float64 { return r.CPUus })
				rel = fmt.Sprintf("%.2f (%.2f–%.2f)", st.med, st.min, st.max)
			}
			fmt.Fprintf(&b, "| %s | %s | **%.1f** (%.1f–%.1f) | %s | %.1f / %.1f | %.1f (%.1f–%.1f) | %.1f | %.0f | %s |\n",
				c, variantName(v), cpu.med, cpu.min, cpu.max, rel, usr.med, sys.med, wall.med, wall.min, wall.max,
				allocs.med, byts.med, rs[0].SQLiteVersion)
		}
	}
	b.WriteString("\n")
	return b.String()
}

func variantName(v string) string {
	switch v {
	case "b1":
		return "B=1"
	case "b32":
		return "B=32 one-row"
	case "multi32":
		return "B=32 multi-row"
	}
	return v
}

type stat struct{ med, min, max float64 }

func stats(rs []report.Result, f func(report.Result) float64) stat {
	xs := make([]float64, len(rs))
	for i, r := range rs {
		xs[i] = f(r)
	}
	slices.Sort(xs)
	med := xs[len(xs)/2]
	if len(xs)%2 == 0 {
		med = (xs[len(xs)/2-1] + xs[len(xs)/2]) / 2
	}
	return stat{med, xs[0], xs[len(xs)-1]}
}

// runBuilds cross-compiles ./probe for every driver and target with
// CGO_ENABLED=0 (and, for mattn, the CGO builds a release would need), runs
// the linux/amd64 builds, and reports sizes.
func runBuilds(tmp string) string {
	type target struct{ goos, goarch string }
	targets := []target{{"linux", "amd64"}, {"linux", "arm64"}, {"windows", "amd64"}, {"darwin", "arm64"}, {"darwin", "amd64"}}
	drivers := []string{"none", "modernc", "ncruces", "mattn"}
	var b strings.Builder
	b.WriteString("## Build constraints: CGO_ENABLED=0, `go build -trimpath -ldflags=\"-s -w\"` of ./probe\n\n")
	b.WriteString("Size is the stripped binary; + is what the driver adds to a program with database/sql and no driver. " +
		"run: the linux/amd64 binary run here (opens a database, prints sqlite_version()).\n\n")
	b.WriteString("| driver |")
	for _, t := range targets {
		fmt.Fprintf(&b, " %s/%s |", t.goos, t.goarch)
	}
	b.WriteString(" run (linux/amd64) |\n|---|")
	for range targets {
		b.WriteString("---|")
	}
	b.WriteString("---|\n")
	base := map[target]int64{}
	for _, d := range drivers {
		fmt.Fprintf(os.Stderr, "cross-compiling probe for %s…\n", d)
		fmt.Fprintf(&b, "| %s |", d)
		runMsg := ""
		for _, t := range targets {
			bin := filepath.Join(tmp, fmt.Sprintf("probe-%s-%s-%s", d, t.goos, t.goarch))
			msg, err := goBuild([]string{"CGO_ENABLED=0", "GOOS=" + t.goos, "GOARCH=" + t.goarch},
				"-tags", d, "-trimpath", "-ldflags=-s -w", "-o", bin, "./probe")
			if err != nil {
				fmt.Fprintf(&b, " fails: %s |", firstLine(msg))
				continue
			}
			fi, err := os.Stat(bin)
			if err != nil {
				fmt.Fprintf(&b, " ? |")
				continue
			}
			if d == "none" {
				base[t] = fi.Size()
				fmt.Fprintf(&b, " %.1f MB |", mb(fi.Size()))
			} else {
				fmt.Fprintf(&b, " %.1f MB (+%.1f) |", mb(fi.Size()), mb(fi.Size()-base[t]))
			}
			if t.goos == runtime.GOOS && t.goarch == runtime.GOARCH {
				runMsg = runProbe(bin)
			}
		}
		fmt.Fprintf(&b, " %s |\n", runMsg)
	}
	b.WriteString(cgoBuilds(tmp))
	b.WriteString("\n")
	return b.String()
}

// cgoBuild is one CGO build of ./probe with mattn: extra environment,
// build arguments (nil: stripped) and tags.
type cgoBuild struct {
	name string
	env  []string
	args []string
	tags string
}

// cgoBuilds tries the CGO builds of mattn a release would need and returns
// their Markdown table.
func cgoBuilds(tmp string) string {
	var b strings.Builder
	b.WriteString("\n### mattn with CGO_ENABLED=1 (what a release of a CGO driver needs)\n\n")
	b.WriteString("| build | result |\n|---|---|\n")
	builds := []cgoBuild{
		{"linux/amd64, dynamic (default)", []string{"CGO_ENABLED=1"}, nil, ""},
		{"linux/amd64, static (-linkmode external -extldflags -static)", []string{"CGO_ENABLED=1"},
			[]string{"-ldflags=-s -w -linkmode external -extldflags -static"}, ""},
		{"linux/amd64, static, -tags sqlite_omit_load_extension", []string{"CGO_ENABLED=1"},
			[]string{"-ldflags=-s -w -linkmode external -extldflags -static"}, "sqlite_omit_load_extension"},
		{"windows/amd64, CGO with this machine's gcc", []string{"CGO_ENABLED=1", "GOOS=windows", "GOARCH=amd64"}, nil, ""},
		{"darwin/arm64, CGO with this machine's gcc", []string{"CGO_ENABLED=1", "GOOS=darwin", "GOARCH=arm64"}, nil, ""},
	}
	// With Debian's gcc-mingw-w64-x86-64, where installed.
	if mingw, err := exec.LookPath("x86_64-w64-mingw32-gcc"); err == nil {
		builds = append(builds, cgoBuild{"windows/amd64, CGO with CC=x86_64-w64-mingw32-gcc, -extldflags -static",
			[]string{"CGO_ENABLED=1", "GOOS=windows", "GOARCH=amd64", "CC=" + mingw},
			[]string{"-ldflags=-s -w -extldflags -static"}, ""})
	}
	for _, c := range builds {
		fmt.Fprintf(os.Stderr, "mattn CGO build: %s…\n", c.name)
		bin := filepath.Join(tmp, "probe-mattn-cgo")
		_ = os.Remove(bin)
		args := append([]string{"-tags", strings.TrimSpace("mattn " + c.tags), "-trimpath"}, c.args...)
		if c.args == nil {
			args = append(args, "-ldflags=-s -w")
		}
		msg, err := goBuild(c.env, append(args, "-o", bin, "./probe")...)
		if err != nil {
			fmt.Fprintf(&b, "| %s | fails: %s |\n", c.name, firstLine(msg))
			continue
		}
		fi, _ := os.Stat(bin)
		res := fmt.Sprintf("builds, %.1f MB", mb(fi.Size()))
		if strings.Contains(msg, "warning") {
			res += "; linker: " + firstLine(msg[strings.Index(msg, "warning"):])
		}
		if !strings.Contains(c.name, "windows") && !strings.Contains(c.name, "darwin") {
			res += "; run: " + runProbe(bin)
			if f, err := exec.Command("file", bin).Output(); err == nil {
				res += "; " + strings.TrimSpace(string(f[strings.Index(string(f), ":")+1:]))
			}
		}
		fmt.Fprintf(&b, "| %s | %s |\n", c.name, strings.ReplaceAll(res, "|", "/"))
	}
	return b.String()
}

func runProbe(bin string) string {
	dir, err := os.MkdirTemp("", "drivercmp-probe-")
	if err != nil {
		return err.Error()
	}
	defer os.RemoveAll(dir)
	cmd := exec.Command(bin)
	cmd.Dir = dir
	cmd.Args = []string{filepath.Join(dir, "probe")}
	var o bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &o
	err = cmd.Run()
	s := firstLine(strings.TrimSpace(o.String()))
	if err != nil {
		return "fails: " + s
	}
	return "ok: " + s
}

// firstLine is the first line of s that is not a "# package" header.
func firstLine(s string) string {
	for _, l := range strings.Split(s, "\n") {
		if !strings.HasPrefix(l, "# ") {
			s = l
			break
		}
	}
	s = strings.ReplaceAll(s, "|", "/")
	if len(s) > 160 {
		s = s[:160] + "…"
	}
	return s
}

func mb(n int64) float64 { return float64(n) / 1e6 }
