package bench

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// clockTicks is USER_HZ, the unit of /proc CPU times (100 on Linux/amd64).
const clockTicks = 100

// procSample is one reading of a process from /proc.
type procSample struct {
	RSSKiB int64
	Ticks  int64 // utime + stime
	At     time.Time
}

// sampleProc reads /proc/<pid>/status (VmRSS) and /proc/<pid>/stat (CPU).
func sampleProc(pid int) (procSample, error) {
	s := procSample{At: time.Now()}
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return s, fmt.Errorf("bench: read status of pid %d: %w", pid, err)
	}
	for _, line := range strings.Split(string(status), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			f := strings.Fields(v)
			if len(f) > 0 {
				s.RSSKiB, _ = strconv.ParseInt(f[0], 10, 64)
			}
		}
	}
	if s.Ticks, err = procTicks(pid); err != nil {
		return s, err
	}
	return s, nil
}

// procTicks is utime+stime of pid, in clock ticks.
func procTicks(pid int) (int64, error) {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("bench: read stat of pid %d: %w", pid, err)
	}
	// The command name may contain spaces; fields resume after the last ')'.
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, fmt.Errorf("bench: malformed /proc/%d/stat", pid)
	}
	f := strings.Fields(string(stat[i+1:]))
	// After ')': state(3) ppid … utime is field 14, stime 15 (1-based, whole line).
	if len(f) < 13 {
		return 0, fmt.Errorf("bench: short /proc/%d/stat", pid)
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("bench: malformed /proc/%d/stat times", pid)
	}
	return ut + st, nil
}

// cpuPercent is the CPU used between two samples, in percent of one core.
func cpuPercent(ticks int64, elapsed time.Duration) float64 {
	if elapsed <= 0 {
		return 0
	}
	return float64(ticks) / clockTicks / elapsed.Seconds() * 100
}

// machineSample is the first line of /proc/stat: all CPUs' time by state.
type machineSample struct {
	idle, total int64
}

func sampleMachine() (machineSample, error) {
	data, err := os.ReadFile("/proc/stat")
	if err != nil {
		return machineSample{}, fmt.Errorf("bench: read /proc/stat: %w", err)
	}
	line, _, _ := strings.Cut(string(data), "\n")
	f := strings.Fields(line)
	if len(f) < 5 || f[0] != "cpu" {
		return machineSample{}, fmt.Errorf("bench: malformed /proc/stat")
	}
	var m machineSample
	for i, v := range f[1:] {
		n, _ := strconv.ParseInt(v, 10, 64)
		if i >= 8 { // guest time is already counted in user
			break
		}
		m.total += n
		if i == 3 || i == 4 { // idle, iowait
			m.idle += n
		}
	}
	return m, nil
}

// idlePercent is the share of all CPUs' time spent idle between a and b.
func idlePercent(a, b machineSample) float64 {
	if b.total <= a.total {
		return 0
	}
	return float64(b.idle-a.idle) / float64(b.total-a.total) * 100
}

// window samples the server, the generator and the machine over a phase.
type window struct {
	serverPID  int
	genPIDs    []int
	start      time.Time
	server     procSample
	serverOK   bool
	genTicks   int64
	machine    machineSample
	machineErr error
}

func openWindow(serverPID int, genPIDs []int) *window {
	w := &window{serverPID: serverPID, genPIDs: genPIDs, start: time.Now()}
	if serverPID > 0 {
		s, err := sampleProc(serverPID)
		w.server, w.serverOK = s, err == nil
	}
	w.genTicks = sumTicks(genPIDs)
	w.machine, w.machineErr = sampleMachine()
	return w
}

// windowResult is what a window measured.
type windowResult struct {
	Elapsed        time.Duration
	ServerCPU      float64 // percent of one core
	ServerRSSStart int64
	ServerRSSEnd   int64
	GeneratorCPU   float64
	MachineIdle    float64 // percent of all cores
}

func (w *window) close() windowResult {
	r := windowResult{Elapsed: time.Since(w.start)}
	if w.serverOK {
		if s, err := sampleProc(w.serverPID); err == nil {
			r.ServerCPU = cpuPercent(s.Ticks-w.server.Ticks, s.At.Sub(w.server.At))
			r.ServerRSSStart, r.ServerRSSEnd = w.server.RSSKiB, s.RSSKiB
		}
	}
	r.GeneratorCPU = cpuPercent(sumTicks(w.genPIDs)-w.genTicks, r.Elapsed)
	if m, err := sampleMachine(); err == nil && w.machineErr == nil {
		r.MachineIdle = idlePercent(w.machine, m)
	}
	return r
}

func sumTicks(pids []int) int64 {
	var n int64
	for _, pid := range pids {
		t, err := procTicks(pid)
		if err == nil {
			n += t
		}
	}
	return n
}
