package redisstream

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// fake62 is a tiny RESP2 server on loopback that answers the commands of a
// claim pass the way Redis 6.2 does for a group whose pending list holds
// an entry deleted from the stream: XAUTOCLAIM returns two elements (no
// list of deleted IDs), the deleted entry's ID among the claimed ones, and
// XRANGE finds nothing for it. It records every command.
type fake62 struct {
	ln      net.Listener
	mu      sync.Mutex
	entries map[string][]string // stream entries still present: ID -> field/value pairs
	pending []string            // the pending list, in ID order
	cmds    [][]string
}

func startFake62(t *testing.T) *fake62 {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &fake62{ln: ln, entries: map[string][]string{}}
	t.Cleanup(func() { _ = ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go f.serve(c)
		}
	}()
	return f
}

func (f *fake62) serve(c net.Conn) {
	defer c.Close()
	r, w := bufio.NewReader(c), bufio.NewWriter(c)
	for {
		args, err := readCommand(r)
		if err != nil {
			return
		}
		f.mu.Lock()
		f.cmds = append(f.cmds, args)
		f.reply(w, args)
		f.mu.Unlock()
		if err := w.Flush(); err != nil {
			return
		}
	}
}

func (f *fake62) reply(w *bufio.Writer, args []string) {
	switch strings.ToUpper(args[0]) {
	case "HELLO":
		w.WriteString("-ERR unknown command 'HELLO'\r\n") // Redis 6.2 speaks RESP2 to go-redis
	case "XAUTOCLAIM":
		// XAUTOCLAIM key group consumer min-idle start COUNT n JUSTID
		fmt.Fprintf(w, "*2\r\n$3\r\n0-0\r\n*%d\r\n", len(f.pending))
		for _, id := range f.pending {
			fmt.Fprintf(w, "$%d\r\n%s\r\n", len(id), id)
		}
	case "XPENDING":
		// XPENDING key group start end count: one entry, delivered twice.
		id := args[3]
		fmt.Fprintf(w, "*1\r\n*4\r\n$%d\r\n%s\r\n$1\r\nc\r\n:100000\r\n:2\r\n", len(id), id)
	case "XRANGE":
		id := args[2]
		kv, ok := f.entries[id]
		if !ok {
			w.WriteString("*0\r\n")
			return
		}
		fmt.Fprintf(w, "*1\r\n*2\r\n$%d\r\n%s\r\n*%d\r\n", len(id), id, len(kv))
		for _, s := range kv {
			fmt.Fprintf(w, "$%d\r\n%s\r\n", len(s), s)
		}
	case "XACK":
		fmt.Fprintf(w, ":%d\r\n", len(args)-3)
	default:
		w.WriteString("+OK\r\n")
	}
}

// readCommand reads one RESP array of bulk strings.
func readCommand(r *bufio.Reader) ([]string, error) {
	line, err := r.ReadString('\n')
	if err != nil {
		return nil, err
	}
	if !strings.HasPrefix(line, "*") {
		return nil, fmt.Errorf("not an array: %q", line)
	}
	n, _ := strconv.Atoi(strings.TrimSpace(line[1:]))
	args := make([]string, n)
	for i := range args {
		h, err := r.ReadString('\n')
		if err != nil {
			return nil, err
		}
		size, _ := strconv.Atoi(strings.TrimSpace(h[1:]))
		buf := make([]byte, size+2)
		if _, err := io.ReadFull(r, buf); err != nil {
			return nil, err
		}
		args[i] = string(buf[:size])
	}
	return args, nil
}

// Defect 4 of the first wave: on Redis 6.2, XAUTOCLAIM (with bodies)
// answers nil for an entry deleted while pending and go-redis then fails
// the whole call, so one trimmed entry stopped reclaiming for the group
// for good. The claim pass uses JUSTID, reads the bodies with XRANGE,
// acknowledges the deleted entry and hands out the others.
func TestClaimMovesPastDeletedEntriesOnRedis62(t *testing.T) {
	f := startFake62(t)
	f.pending = []string{"1-1", "2-1"}
	f.entries["2-1"] = []string{fieldUUID, "event-2", fieldMetadata, "", fieldPayload, "{}"}
	client := redis.NewClient(&redis.Options{Addr: f.ln.Addr().String(), Protocol: 2, MaxRetries: -1})
	t.Cleanup(func() { _ = client.Close() })
	tr := &Transport{client: client, opts: DefaultOptions(), log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	s := &redisSub{
		t: tr, client: client, rc: client, log: tr.log,
		topic: "e.x", stream: "busline:e.x", group: "g", consumer: "c",
		ackTimeout: time.Second, batch: maxBatch,
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	msgs, next, err := s.Claim(ctx, time.Second, "", 10)
	if err != nil {
		t.Fatalf("Claim over an entry deleted while pending (Redis 6.2 replies): %v", err)
	}
	if next != "" {
		t.Errorf("cursor %q, want the scan complete", next)
	}
	if len(msgs) != 1 || msgs[0].Message.UUID != "event-2" || msgs[0].Attempts != 2 || msgs[0].AckID != "2-1" {
		t.Fatalf("claimed %+v, want only event-2 (2-1) with its 2 deliveries", msgs)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	var acked, justID bool
	for _, c := range f.cmds {
		switch strings.ToUpper(c[0]) {
		case "XACK":
			acked = acked || (len(c) == 4 && c[3] == "1-1")
		case "XAUTOCLAIM":
			justID = strings.EqualFold(c[len(c)-1], "justid")
		}
	}
	if !justID {
		t.Error("XAUTOCLAIM without JUSTID: Redis 6.2 answers nil for deleted entries, which go-redis cannot read")
	}
	if !acked {
		t.Errorf("the deleted entry 1-1 was not acknowledged; commands: %v", f.cmds)
	}
}
