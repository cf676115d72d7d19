package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"image/png"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/parleychat/parley/models"
	"github.com/parleychat/parley/parleytest"
)

func noEnv(string) string { return "" }

func TestUsageErrors(t *testing.T) {
	ctx := context.Background()
	cases := []struct {
		args []string
		want string
	}{
		{nil, "no scenario"},
		{[]string{"bogus"}, "unknown scenario"},
		{[]string{"fanout", "--secret", "s", "--http", "http://192.0.2.1:8080"}, "--allow-remote"},
		{[]string{"fanout", "--secret", "s", "--ws", "ws://192.0.2.1:8080"}, "--allow-remote"},
		{[]string{"rawfanout", "--raw-url", "http://192.0.2.1:8090"}, "--allow-remote"},
		{[]string{"fanout"}, "PARLEY_JWT_SECRET"},
		{[]string{"fanout", "--secret", "s", "--rates", "10,x"}, "--rates"},
		{[]string{"fanout", "--secret", "s", "--rates", "10,20", "--step-duration", "5m"}, "--max-duration"},
		{[]string{"idle", "--secret", "s", "--duration", "1h"}, "--max-duration"},
		{[]string{"write", "--secret", "s", "--plot", "x.svg"}, "--plot"},
		{[]string{"history", "--secret", "s"}, "--database-url"},
		{[]string{"history", "--secret", "s", "--database-url", "postgres://u@192.0.2.1/db"}, "--allow-remote"},
		{[]string{"history", "--secret", "s", "--sizes", "0"}, "--sizes"},
		{[]string{"history", "--secret", "s", "--database-url", "x.db", "--filter", "types=BOGUS"}, "--filter"},
		{[]string{"history", "--secret", "s", "--database-url", "x.db", "--filter", "authors=4"}, "--filter"},
		{[]string{"history", "--secret", "s", "--database-url", "x.db", "--filter", "hasMedia"}, "--filter"},
		{[]string{"fanout", "--nope"}, "not defined"},
	}
	for _, c := range cases {
		err := run(ctx, c.args, noEnv, &bytes.Buffer{}, &bytes.Buffer{})
		if !errors.Is(err, errUsage) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("run(%q) = %v, want a usage error mentioning %q", c.args, err, c.want)
		}
	}
	var out bytes.Buffer
	if err := run(ctx, []string{"help"}, noEnv, &out, &bytes.Buffer{}); err != nil || !strings.Contains(out.String(), "rawfanout") {
		t.Fatalf("help: %v\n%s", err, out.String())
	}
}

func TestParseLists(t *testing.T) {
	rates, err := parseRates(" 10, 50.5 ,200")
	if err != nil || len(rates) != 3 || rates[1] != 50.5 {
		t.Fatalf("rates %v %v", rates, err)
	}
	sizes, err := parseSizes("10_000,100000")
	if err != nil || len(sizes) != 2 || sizes[0] != 10000 {
		t.Fatalf("sizes %v %v", sizes, err)
	}
}

// TestFanoutCommand runs the command end to end against an in-process
// server, with JSON and an SVG plot, the secret from the environment.
func TestFanoutCommand(t *testing.T) {
	srv := parleytest.NewServer(t, parleytest.Backends()[0], parleytest.Options{})
	t.Cleanup(func() { waitOffline(t, srv) })
	dir := t.TempDir()
	jsonPath, plotPath := filepath.Join(dir, "r.json"), filepath.Join(dir, "r.svg")
	getenv := func(k string) string {
		if k == "PARLEY_JWT_SECRET" {
			return string(srv.Secret)
		}
		return ""
	}
	var stdout, stderr bytes.Buffer
	args := []string{"fanout", "--http", srv.URL, "--rooms", "1", "--subscribers", "3", "--rates", "20",
		"--step-duration", "1s", "--drain", "2s", "--json", jsonPath, "--plot", plotPath, "--max-duration", "1m"}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := run(ctx, args, getenv, &stdout, &stderr); err != nil {
		t.Fatalf("run: %v\nstdout:\n%s\nstderr:\n%s", err, stdout.String(), stderr.String())
	}
	t.Log("\n" + stdout.String())
	if !strings.Contains(stdout.String(), "100%") || !strings.Contains(stdout.String(), "exactly once") {
		t.Fatalf("table:\n%s", stdout.String())
	}
	raw, err := os.ReadFile(jsonPath)
	if err != nil {
		t.Fatal(err)
	}
	var out struct {
		Scenario string
		OK       bool
		Result   struct {
			Steps []struct {
				DeliveryRatio float64 `json:"delivery_ratio"`
			}
		}
	}
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatal(err)
	}
	if out.Scenario != "fanout" || !out.OK || len(out.Result.Steps) != 1 || out.Result.Steps[0].DeliveryRatio != 1 {
		t.Fatalf("JSON = %s", raw)
	}
	svg, err := os.ReadFile(plotPath)
	if err != nil || !bytes.HasPrefix(svg, []byte("<svg")) {
		t.Fatalf("plot: %v %.40q", err, svg)
	}
}

// TestRawFanoutCommand needs no server; it draws a PNG.
func TestRawFanoutCommand(t *testing.T) {
	plotPath := filepath.Join(t.TempDir(), "r.png")
	profilePath := filepath.Join(t.TempDir(), "tool.pb.gz")
	var stdout bytes.Buffer
	args := []string{"rawfanout", "--rooms", "2", "--subscribers", "2", "--rates", "20", "--step-duration", "1s", "--plot", plotPath, "--cpuprofile", profilePath, "--quiet"}
	if err := run(context.Background(), args, noEnv, &stdout, &bytes.Buffer{}); err != nil {
		t.Fatalf("run: %v\n%s", err, stdout.String())
	}
	// --cpuprofile writes a pprof profile: gzipped protocol buffers.
	prof, err := os.ReadFile(profilePath)
	if err != nil {
		t.Fatal(err)
	}
	zr, err := gzip.NewReader(bytes.NewReader(prof))
	if err != nil {
		t.Fatalf("the profile is not gzipped: %v", err)
	}
	if body, err := io.ReadAll(zr); err != nil || len(body) == 0 {
		t.Fatalf("the profile holds %d bytes: %v", len(body), err)
	}
	f, err := os.Open(plotPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := png.Decode(f); err != nil {
		t.Fatal(err)
	}
}

// TestRawServerCommand serves the raw baseline on its own and measures it
// with rawfanout --raw-url, as when it is pinned to the server's core.
func TestRawServerCommand(t *testing.T) {
	addr := freeAddr(t)
	ctx, stop := context.WithCancel(context.Background())
	var served bytes.Buffer
	done := make(chan error, 1)
	go func() { done <- run(ctx, []string{"rawserver", "--addr", addr}, noEnv, &served, &bytes.Buffer{}) }()
	url := "http://" + addr
	waitListening(t, addr)

	var stdout bytes.Buffer
	args := []string{"rawfanout", "--raw-url", url, "--rooms", "2", "--subscribers", "3", "--rates", "20", "--step-duration", "1s", "--quiet"}
	if err := run(context.Background(), args, noEnv, &stdout, &bytes.Buffer{}); err != nil {
		t.Fatalf("rawfanout: %v\n%s", err, stdout.String())
	}
	if !strings.Contains(stdout.String(), "every message reached every subscriber exactly once") {
		t.Fatalf("rawfanout output:\n%s", stdout.String())
	}

	stop()
	if err := <-done; err != nil {
		t.Fatalf("rawserver: %v", err)
	}
	if !strings.Contains(served.String(), url) {
		t.Fatalf("rawserver printed %q, want its URL %s", served.String(), url)
	}
	// --raw-url is for a baseline only.
	err := run(context.Background(), []string{"fanout", "--raw-url", url, "--secret", "s"}, noEnv, &bytes.Buffer{}, &bytes.Buffer{})
	if !errors.Is(err, errUsage) {
		t.Fatalf("fanout --raw-url without --baseline: %v, want a usage error", err)
	}
}

// freeAddr returns a loopback address with a port nothing listens on.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	if err := ln.Close(); err != nil {
		t.Fatal(err)
	}
	return addr
}

// waitListening waits until something accepts connections on addr.
func waitListening(t *testing.T, addr string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("nothing listens on %s: %v", addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitOffline waits until the server has recorded every disconnect, so
// that it does not find its database closed at cleanup.
func waitOffline(t *testing.T, srv *parleytest.Server) {
	t.Helper()
	ctx := context.Background()
	var ids []string
	if err := srv.Store.DB(ctx).Model(&models.User{}).Pluck("id", &ids).Error; err != nil {
		t.Errorf("list users: %v", err)
		return
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		online, err := srv.Presence.Online(ctx, ids)
		if err != nil {
			t.Errorf("presence: %v", err)
			return
		}
		n := 0
		for _, on := range online {
			if on {
				n++
			}
		}
		if n == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("%d users still online 5 s after the run", n)
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
}
