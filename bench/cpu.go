package main

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// clockTicks is USER_HZ, the unit of /proc/stat and /proc/<pid>/stat times;
// 100 on every Linux this runs on.
const clockTicks = 100

// cpuSnapshot is what the machine and this process tree had spent at one moment.
type cpuSnapshot struct {
	at      time.Time
	machine time.Duration // all CPUs, busy (not idle, not iowait)
	ours    time.Duration // this process, its waited children, its live children
}

// takeCPU reads /proc/stat and the rusage of this process tree. Live children
// (redis-server, a Kafka broker) are read from /proc/<pid>/stat.
func takeCPU() cpuSnapshot {
	s := cpuSnapshot{at: time.Now(), machine: machineBusy()}
	for _, who := range []int{syscall.RUSAGE_SELF, syscall.RUSAGE_CHILDREN} {
		var ru syscall.Rusage
		if syscall.Getrusage(who, &ru) == nil {
			s.ours += time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
		}
	}
	s.ours += liveChildrenCPU(os.Getpid())
	return s
}

func machineBusy() time.Duration {
	f := strings.Fields(firstLine("/proc/stat")) // cpu user nice system idle iowait irq softirq steal ...
	var busy int64
	for i, v := range f {
		if i == 0 || i == 4 || i == 5 {
			continue
		}
		n, _ := strconv.ParseInt(v, 10, 64)
		busy += n
	}
	return time.Duration(busy) * time.Second / clockTicks
}

// liveChildrenCPU sums utime+stime of the running children of pid.
func liveChildrenCPU(pid int) time.Duration {
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	var sum int64
	for _, p := range stats {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		// pid (comm) state ppid ... utime(14) stime(15); comm may hold spaces.
		rest := string(b)
		if i := strings.LastIndexByte(rest, ')'); i >= 0 {
			rest = rest[i+1:]
		}
		f := strings.Fields(rest)
		if len(f) < 13 || f[1] != strconv.Itoa(pid) {
			continue
		}
		ut, _ := strconv.ParseInt(f[11], 10, 64)
		st, _ := strconv.ParseInt(f[12], 10, 64)
		sum += ut + st
	}
	return time.Duration(sum) * time.Second / clockTicks
}
