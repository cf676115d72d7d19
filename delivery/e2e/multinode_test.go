package e2e_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/parleychat/parley/auth"
	"github.com/parleychat/parley/delivery/deliverytest"
	"github.com/parleychat/parley/parleytest"
)

// TestTwoNodesDeliverOnce: two nodes work one queue; every push is sent
// exactly once.
func TestTwoNodesDeliverOnce(t *testing.T) {
	t.Parallel()
	nodes := parleytest.MultiNode(t)
	f := newFakes(t)
	a := parleytest.NewServer(t, nodes, parleytest.Options{Delivery: f.config()})
	b := parleytest.NewServer(t, nodes, parleytest.Options{Delivery: f.config(), DatabaseURL: a.DatabaseURL})
	ch := createChannel(t, a, "alice", "General", "bob", "carol")
	register(t, a, "bob", "FCM", "fcm-bob")
	register(t, b, "carol", "APNS", "apns-carol")
	const n = 40
	ids := map[string]bool{}
	for i := range n {
		node := a
		if i%2 == 1 {
			node = b
		}
		ids[send(t, node, "alice", ch, fmt.Sprint("message ", i))] = true
	}
	waitIdle(t, a)
	waitIdle(t, b)
	seen := map[string]int{}
	for _, m := range f.fcm.Messages() {
		seen["fcm/"+m.Data["messageId"]]++
	}
	for _, m := range f.apns.Notifications() {
		seen["apns/"+m.Data["messageId"]]++
	}
	for id := range ids {
		for _, p := range []string{"fcm/", "apns/"} {
			if seen[p+id] != 1 {
				t.Errorf("%s%s pushed %d times", p, id, seen[p+id])
			}
		}
	}
	if len(seen) != 2*n {
		t.Errorf("%d pushes, want %d", len(seen), 2*n)
	}
}

// TestKilledNodeLeavesJobToAnother: a node killed (SIGKILL) while its push
// is in flight leaves the job running in the database; another node
// rescues it and delivers the push again, with the same collapse key.
func TestKilledNodeLeavesJobToAnother(t *testing.T) {
	t.Parallel()
	nodes := parleytest.MultiNode(t)
	bin := buildParley(t)
	f := newFakes(t)
	hold := make(chan struct{})
	defer close(hold)
	f.fcm.Reply("fcm-bob", deliverytest.Reply{Hold: hold})
	dbURL := nodes.NewURL(t)
	secret := "parleytest-secret-0123456789abcdef"

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "serve")
	cmd.Env = append(os.Environ(),
		"DATABASE_URL="+dbURL, "REDIS_URL="+os.Getenv("TEST_REDIS_URL"), "PARLEY_JWT_SECRET="+secret,
		"PARLEY_ADDR=127.0.0.1:0", "PARLEY_FCM_CREDENTIALS="+f.fcm.CredentialsFile, "PARLEY_FCM_ENDPOINT="+f.fcm.URL)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	addr := servingAddr(t, stderr)
	post := func(identity, query string, vars map[string]any, out any) {
		t.Helper()
		tok, err := auth.Mint([]byte(secret), identity, "", time.Hour, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		body, _ := json.Marshal(map[string]any{"query": query, "variables": vars})
		req, _ := http.NewRequest(http.MethodPost, "http://"+addr+"/graphql", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var r struct {
			Data   json.RawMessage
			Errors []any
		}
		if err := json.NewDecoder(resp.Body).Decode(&r); err != nil || len(r.Errors) > 0 {
			t.Fatalf("%s: %v %v", query, err, r.Errors)
		}
		if out != nil {
			if err := json.Unmarshal(r.Data, out); err != nil {
				t.Fatal(err)
			}
		}
	}
	var created struct {
		CreateChannel struct{ ID string } `json:"createChannel"`
	}
	post("alice", `mutation { createChannel(input: {friendlyName: "General", members: ["bob"]}) { id } }`, nil, &created)
	post("bob", `mutation { registerPush(provider: FCM, token: "fcm-bob") { id } }`, nil, nil)
	var sent struct {
		SendMessage struct{ ID string } `json:"sendMessage"`
	}
	post("alice", `mutation($c: ID!) { sendMessage(input: {channelId: $c, body: "hi"}) { id } }`, map[string]any{"c": created.CreateChannel.ID}, &sent)

	first := f.fcm.Next(t)
	if first.Data["messageId"] != sent.SendMessage.ID {
		t.Fatalf("first push %+v", first)
	}
	// The push is in flight on the first node: kill it.
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()

	cfg := f.config()
	cfg.JobTimeout = time.Second
	parleytest.NewServer(t, nodes, parleytest.Options{DatabaseURL: dbURL, Delivery: cfg})
	again := f.fcm.Next(t)
	if again.Token != "fcm-bob" || again.Data["messageId"] != sent.SendMessage.ID || again.CollapseKey != first.CollapseKey {
		t.Errorf("push after the rescue %+v; want the same as %+v", again, first)
	}
}

// buildParley builds the parley command, with the race detector when this
// test has it.
func buildParley(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "parley")
	args := []string{"build", "-o", bin}
	if raceEnabled {
		args = append(args, "-race")
	}
	out, err := exec.Command("go", append(args, "github.com/parleychat/parley/cmd/parley")...).CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// servingAddr reads the server's log until it says where it serves.
func servingAddr(t *testing.T, stderr interface{ Read([]byte) (int, error) }) string {
	t.Helper()
	found := make(chan string, 1)
	re := regexp.MustCompile(`msg="parley serving" addr=(\S+)`)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			t.Log("node:", sc.Text())
			if m := re.FindStringSubmatch(sc.Text()); m != nil {
				found <- m[1]
			}
		}
	}()
	select {
	case addr := <-found:
		return addr
	case <-time.After(60 * time.Second):
		t.Fatal("the node did not start")
		return ""
	}
}
