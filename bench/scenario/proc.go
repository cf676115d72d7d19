package scenario

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/parleychat/parley/bench/client"
)

// ProcSample is a reading of a server process.
type ProcSample struct {
	// RSSBytes is VmRSS from /proc/<pid>/status.
	RSSBytes int64 `json:"rss_bytes"`
	// Threads is the OS thread count from /proc/<pid>/status.
	Threads int `json:"threads"`
	// Goroutines is from the pprof endpoint, -1 when not measured.
	Goroutines int `json:"goroutines"`
}

// readProcStatus reads VmRSS and Threads of process pid (Linux only).
func readProcStatus(pid int) (rss int64, threads int, err error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, fmt.Errorf("read server memory (Linux /proc only): %w", err)
	}
	rss, threads, err = parseProcStatus(f)
	if cerr := f.Close(); err == nil && cerr != nil {
		err = cerr
	}
	if err != nil {
		return 0, 0, fmt.Errorf("/proc/%d/status: %w", pid, err)
	}
	return rss, threads, nil
}

// parseProcStatus extracts VmRSS (in bytes) and Threads.
func parseProcStatus(r io.Reader) (rss int64, threads int, err error) {
	sc := bufio.NewScanner(r)
	var haveRSS, haveThreads bool
	for sc.Scan() {
		key, val, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		f := strings.Fields(val)
		switch key {
		case "VmRSS":
			if len(f) != 2 || f[1] != "kB" {
				return 0, 0, fmt.Errorf("unexpected VmRSS %q", val)
			}
			kb, err := strconv.ParseInt(f[0], 10, 64)
			if err != nil {
				return 0, 0, fmt.Errorf("VmRSS: %w", err)
			}
			rss, haveRSS = kb*1024, true
		case "Threads":
			if len(f) != 1 {
				return 0, 0, fmt.Errorf("unexpected Threads %q", val)
			}
			n, err := strconv.Atoi(f[0])
			if err != nil {
				return 0, 0, fmt.Errorf("Threads: %w", err)
			}
			threads, haveThreads = n, true
		}
	}
	if err := sc.Err(); err != nil {
		return 0, 0, err
	}
	if !haveRSS || !haveThreads {
		return 0, 0, fmt.Errorf("no VmRSS or Threads line (is it a kernel thread or a zombie?)")
	}
	return rss, threads, nil
}

// goroutineProfileURL is base's net/http/pprof goroutine summary URL.
func goroutineProfileURL(base string) (string, error) {
	u, err := url.Parse(base)
	if err != nil || u.Host == "" {
		return "", fmt.Errorf("pprof URL %q: want http://host:port", base)
	}
	if u.Path == "" || u.Path == "/" {
		u.Path = "/debug/pprof/goroutine"
	}
	u.RawQuery = "debug=1"
	return u.String(), nil
}

// readGoroutines reads the goroutine count from a net/http/pprof endpoint:
// the first line of ?debug=1 is "goroutine profile: total N".
func readGoroutines(ctx context.Context, hc *http.Client, base string) (int, error) {
	u, err := goroutineProfileURL(base)
	if err != nil {
		return 0, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return 0, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return 0, fmt.Errorf("goroutine profile: %w", err)
	}
	line, err := bufio.NewReader(io.LimitReader(resp.Body, 4096)).ReadString('\n')
	if cerr := resp.Body.Close(); err == nil && cerr != nil {
		err = cerr
	}
	if resp.StatusCode != http.StatusOK {
		return 0, &client.HTTPError{Status: resp.StatusCode, Body: strings.TrimSpace(line)}
	}
	if err != nil && err != io.EOF {
		return 0, fmt.Errorf("goroutine profile: %w", err)
	}
	rest, ok := strings.CutPrefix(strings.TrimSpace(line), "goroutine profile: total ")
	if !ok {
		return 0, fmt.Errorf("goroutine profile: unexpected first line %q", line)
	}
	n, err := strconv.Atoi(rest)
	if err != nil {
		return 0, fmt.Errorf("goroutine profile: %w", err)
	}
	return n, nil
}

// clockTicks is the unit of the CPU times in /proc/<pid>/stat (USER_HZ,
// 100 on Linux).
const clockTicks = 10 * time.Millisecond

// readProcCPU reads the CPU time (user and system) process pid has used
// (Linux only).
func readProcCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("read server CPU (Linux /proc only): %w", err)
	}
	cpu, err := parseProcStat(string(b))
	if err != nil {
		return 0, fmt.Errorf("/proc/%d/stat: %w", pid, err)
	}
	return cpu, nil
}

// parseProcStat returns utime+stime of a /proc/<pid>/stat line. The
// command name, in parentheses, may hold spaces: the fields are counted
// from the last ')'.
func parseProcStat(line string) (time.Duration, error) {
	end := strings.LastIndexByte(line, ')')
	if end < 0 {
		return 0, fmt.Errorf("no command name in %q", line)
	}
	f := strings.Fields(line[end+1:])
	// f[0] is field 3 (state); utime and stime are fields 14 and 15.
	if len(f) < 13 {
		return 0, fmt.Errorf("too few fields in %q", line)
	}
	var ticks int64
	for _, s := range f[11:13] {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("CPU time %q: %w", s, err)
		}
		ticks += n
	}
	return time.Duration(ticks) * clockTicks, nil
}
