package testkit

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// DefaultRedisURL is used when REDIS_URL is not set.
const DefaultRedisURL = "redis://127.0.0.1:6379"

// RedisURL returns REDIS_URL or the default.
func RedisURL() string {
	if u := os.Getenv("REDIS_URL"); u != "" {
		return u
	}
	return DefaultRedisURL
}

// Redis is a connection to the real Redis plus a key prefix unique to one
// test, so tests can run side by side on one server without seeing each
// other's keys.
type Redis struct {
	Client *redis.Client
	Prefix string
}

// StartRedis connects to REDIS_URL. When Redis cannot be reached the test
// is skipped on a developer's machine, but fails when CI is set: CI must
// never pass by skipping. Keys under the test's prefix are removed when the
// test ends.
func StartRedis(t testing.TB) *Redis {
	t.Helper()
	opt, err := redis.ParseURL(RedisURL())
	if err != nil {
		t.Fatalf("parsing REDIS_URL: %v", err)
	}
	c := redis.NewClient(opt)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := c.Ping(ctx).Err(); err != nil {
		c.Close()
		if os.Getenv("CI") != "" {
			t.Fatalf("Redis at %s is required in CI: %v", RedisURL(), err)
		}
		t.Skipf("Redis at %s not reachable (set CI to make this fail): %v", RedisURL(), err)
	}
	var b [6]byte
	_, _ = rand.Read(b[:])
	r := &Redis{Client: c, Prefix: "test:" + hex.EncodeToString(b[:]) + ":"}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		iter := c.Scan(ctx, 0, r.Prefix+"*", 100).Iterator()
		for iter.Next(ctx) {
			c.Del(ctx, iter.Val())
		}
		c.Close()
	})
	return r
}

// RedisServer is a private redis-server process, for tests that stop Redis.
type RedisServer struct {
	URL string
	cmd *exec.Cmd
}

// StartRedisServer runs a redis-server of its own on a free loopback port
// and stops it when the test ends. Without a redis-server binary the test
// is skipped, or fails when CI is set.
func StartRedisServer(t testing.TB) *RedisServer {
	t.Helper()
	bin := Tool(t, "redis-server")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	cmd := exec.Command(bin, "--port", strconv.Itoa(port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--dir", t.TempDir())
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting redis-server: %v", err)
	}
	s := &RedisServer{URL: fmt.Sprintf("redis://127.0.0.1:%d", port), cmd: cmd}
	t.Cleanup(s.Stop)
	opt, _ := redis.ParseURL(s.URL)
	c := redis.NewClient(opt)
	defer c.Close()
	deadline := time.Now().Add(10 * time.Second)
	for c.Ping(context.Background()).Err() != nil {
		if time.Now().After(deadline) {
			t.Fatal("redis-server did not answer within 10s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	return s
}

// Stop kills the server and waits for it; calling it twice is harmless.
func (s *RedisServer) Stop() {
	if s.cmd.ProcessState == nil {
		_ = s.cmd.Process.Kill()
		_ = s.cmd.Wait()
	}
}
