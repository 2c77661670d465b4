package proc_test

import (
	"errors"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tandem-dev/tandem/internal/proc"
)

func TestStart(t *testing.T) {
	t.Run("LinesDeliveredBeforeDone", func(t *testing.T) {
		var mu sync.Mutex
		var got []string
		cmd := exec.Command("sh", "-c", "echo one; printf 'two\\nthree\\n'; printf tail")
		cmd.Stdout = proc.Lines(func(l []byte) {
			mu.Lock()
			got = append(got, string(l))
			mu.Unlock()
		})
		p, err := proc.Start(cmd)
		if err != nil {
			t.Fatal(err)
		}
		if err := p.Err(); err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		defer mu.Unlock()
		if strings.Join(got, ",") != "one,two,three" {
			t.Fatalf("lines %q, want one, two, three", got)
		}
	})
	t.Run("StopKillsTheGroup", func(t *testing.T) {
		// The shell ignores SIGTERM; its child sleeps. Stop must kill both.
		out := &strings.Builder{}
		cmd := exec.Command("sh", "-c", "trap '' TERM; sleep 30 & echo $!; wait")
		var mu sync.Mutex
		cmd.Stdout = proc.Lines(func(l []byte) { mu.Lock(); out.Write(l); mu.Unlock() })
		p, err := proc.Start(cmd)
		if err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(5 * time.Second)
		for {
			mu.Lock()
			s := out.String()
			mu.Unlock()
			if s != "" || time.Now().After(deadline) {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		if p.Stop(200 * time.Millisecond) {
			t.Error("Stop reported an exit within grace from a shell that ignores SIGTERM")
		}
		if !p.Exited() {
			t.Fatal("not reaped after Stop")
		}
		if err := p.Signal(syscall.SIGTERM); !errors.Is(err, proc.ErrExited) {
			t.Errorf("Signal after exit: %v, want ErrExited", err)
		}
	})
	t.Run("ErrNotFound", func(t *testing.T) {
		if _, err := proc.Start(exec.Command("/nonexistent/tandem-proc-test")); err == nil {
			t.Fatal("started a binary that does not exist")
		}
	})
}

func TestFreePort(t *testing.T) {
	p, err := proc.FreePort()
	if err != nil || p <= 0 || p > 65535 {
		t.Fatalf("FreePort() = %d, %v", p, err)
	}
}
