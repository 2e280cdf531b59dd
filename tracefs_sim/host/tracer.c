/*
 * tracefs-sim-tracer: run a command under ptrace and report what it and every descendant
 * does, as binary records on a socket (docs/host-tracing.md; tracefs_sim/host/proto.py is
 * the Python half of the wire format: change both together).
 *
 *   tracefs-sim-tracer --sock FD [--go-fd FD] [--] CMD [ARGS...]
 *
 * FD is a SOCK_STREAM socket to the server.  The tracer waits for the server's CAPTURE
 * message (and, with --go-fd, for EOF on that fd) before it starts CMD.  It exits with
 * CMD's status (128+N when CMD was killed by signal N; 127 when CMD is not found, 126 when
 * it cannot be executed) once every tracee is gone.
 *
 * A loop of waitpid and ptrace and nothing else: it knows no tracing policy.  Every record
 * of a stop is written before the tracee is resumed, so the server, which drains the
 * socket before it handles a FUSE request, sees a traced task's syscall entry before the
 * request the syscall makes.  The per-stop path allocates nothing and makes only the
 * syscalls it needs: wait4, PTRACE_GET_SYSCALL_INFO, one pread of /proc/TID/stat (the
 * CPU, field 39, and the comm) on a kept-open fd, one pread of /proc/TID/schedstat (did
 * the syscall sleep), process_vm_readv for captures, one write and the resume.  The stat read costs as much as the rest of a stop (do_task_stat formats
 * 52 fields), so a syscall stop within SLEPT_NS of the task's last read reuses that CPU: a
 * task changes CPU only when it is scheduled, which in less time it rarely is (a tight
 * syscall loop still reads it every SLEPT_NS; a syscall that slept longer always).
 */
#define _GNU_SOURCE
#include <elf.h>
#include <errno.h>
#include <linux/audit.h>
#include <stdarg.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

/* ------------------------------------------------------------------ wire format */
enum {
	SYS_ENTER = 1, SYS_EXIT = 2, NEW_TASK = 3, EXEC = 4, EXIT = 5, SIGNAL = 6, GONE = 7,
	ATTACHED = 8, COMM = 9, INTERRUPTED = 10, FAULTS = 11, MAPS = 12, ACK = 64, MODE = 128,
	CAPTURE = 129,
};
enum { MODE_LIFECYCLE = 0, MODE_SYSCALLS = 1 };
enum { CAP_CSTRING = 1, CAP_BUFFER = 2, CAP_FIXED = 3, CAP_OUT = 4, CAP_SOCKNAME = 5 };
#define HDR_COMPAT 1            /* header flag: an i386 (int 0x80) syscall, numbered as on i386 */
#define COMM_LEN 16
#define MAX_CAPTURE 4096
#define MAX_MAPS 32768          /* bytes of /proc/PID/maps sent at an exec */

struct hdr {
	uint32_t len;
	uint16_t type;
	uint16_t flags;
	uint32_t tid;
	uint32_t cpu;
	uint64_t ts;
};

struct cap_spec {               /* one entry of the server's CAPTURE table */
	uint8_t argidx, kind;
	uint32_t param;
};

#define SLEPT_NS 100000          /* read a task's CPU again after this long */
#define NR_MAX 1024             /* x86_64 syscall numbers (the x32 ones start at 512) */
#define CAP_MAX 2048
static struct cap_spec caps[CAP_MAX];
static uint16_t cap_first[NR_MAX], cap_count[NR_MAX];
static int have_capture;

/* ------------------------------------------------------------------ state */
enum { T_STOPPED, T_RUNNING, T_LISTENING, T_HELD };

struct task {
	int tid;                /* 0: a free slot */
	int tgid;
	int statfd;             /* /proc/TID/stat, kept open; -1 when not open */
	int schedfd;            /* /proc/TID/schedstat, kept open; -1 when not open */
	int cpu;                /* field 39 of the last stat read */
	int held_status;        /* T_HELD: the wait status of its first stop */
	int creator;            /* T_HELD: the thread group whose fork event should announce it */
	long nr;                /* the syscall whose entry was reported (in_syscall) */
	uint64_t args[6];       /* its argument registers (for the captures at its exit) */
	uint64_t sched[3];      /* schedstat at its entry stop: run ns, run-queue wait ns, runs */
	uint64_t sched_ts;      /* when that was read; 0: unknown */
	uint64_t stat_ts;       /* when cpu was read */
	uint64_t flt[2];        /* minflt, majflt (fields 10, 12) of the last stat read */
	uint64_t flt_rep[2];    /* what the last FAULTS record (or the baseline) counted */
	unsigned char state, in_syscall, exited, announced;
	unsigned char interrupted;      /* PTRACE_INTERRUPTed by a switch to syscalls mode */
	char comm[COMM_LEN];
};

#define CHUNK 1024
static struct task *chunks[4096];       /* tasks never move: pointers stay valid */
static int nchunks, next_free = -1, nslots;
static int32_t *htab;                   /* open addressing: task index + 1, 0 = empty */
static unsigned hbits, hused;
static int held;                        /* tasks in T_HELD */

static int sock = -1, server_gone, mode = MODE_LIFECYCLE;
static pid_t root_pid;
static int root_status = -1;
static struct rlimit nofile_orig;
static long page_size;

/* Set by the signal handler (SIGUSR1: a control message; SIGTERM/SIGHUP: forward to CMD)
 * and read by tracer_wait4 before it sleeps. */
__attribute__((visibility("hidden"))) volatile int tracer_wake;
static volatile sig_atomic_t fwd_sig;

static unsigned char out[1 << 17] __attribute__((aligned(8)));
static size_t outlen;
static unsigned char ctl[1 << 16] __attribute__((aligned(8)));
static size_t ctllen;

static void die(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));
static void die(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("tracefs-sim-tracer: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	exit(2);        /* PTRACE_O_EXITKILL: every tracee is killed, none stays stopped */
}

/*
 * wait4(-1, status, __WALL, NULL) that cannot sleep through a control message.  The
 * handler sets tracer_wake; a signal that arrives after the check but before the syscall
 * instruction finds the instruction pointer on it and moves it to the bail-out (the way
 * musl makes cancellation points race-free).  Inside the syscall the signal interrupts it
 * (no SA_RESTART): -EINTR.
 */
long tracer_wait4(int *status);
extern const char tracer_wait4_syscall[], tracer_wait4_bail[];
__asm__(
	"	.text\n"
	"	.globl tracer_wait4\n"
	"	.type tracer_wait4, @function\n"
	"tracer_wait4:\n"
	"	mov %rdi, %rsi\n"
	"	mov $-1, %rdi\n"
	"	mov $0x40000000, %edx\n"        /* __WALL */
	"	xor %r10d, %r10d\n"
	"	mov $61, %eax\n"                /* __NR_wait4 */
	"	cmpl $0, tracer_wake(%rip)\n"
	"	jne tracer_wait4_bail\n"
	"	.globl tracer_wait4_syscall\n"
	"tracer_wait4_syscall:\n"
	"	syscall\n"
	"	ret\n"
	"	.globl tracer_wait4_bail\n"
	"tracer_wait4_bail:\n"
	"	mov $-4, %rax\n"                /* -EINTR */
	"	ret\n"
	"	.size tracer_wait4, .-tracer_wait4\n");

static void on_signal(int sig, siginfo_t *si, void *ctx)
{
	ucontext_t *uc = ctx;
	(void)si;
	if (sig != SIGUSR1)
		fwd_sig = sig;
	tracer_wake = 1;
	if (uc->uc_mcontext.gregs[REG_RIP] == (greg_t)tracer_wait4_syscall)
		uc->uc_mcontext.gregs[REG_RIP] = (greg_t)tracer_wait4_bail;
}

static uint64_t now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ------------------------------------------------------------------ task table */
static struct task *slot(int i) { return &chunks[i / CHUNK][i % CHUNK]; }

static unsigned hslot(int tid) { return (uint32_t)((uint32_t)tid * 0x9E3779B1u) >> (32 - hbits); }

static struct task *task_find(int tid)
{
	unsigned mask = (1u << hbits) - 1;
	for (unsigned h = hslot(tid);; h = (h + 1) & mask) {
		int32_t v = htab[h];
		if (!v)
			return NULL;
		if (slot(v - 1)->tid == tid)
			return slot(v - 1);
	}
}

static void hinsert(int idx)
{
	unsigned mask = (1u << hbits) - 1, h = hslot(slot(idx)->tid);
	while (htab[h])
		h = (h + 1) & mask;
	htab[h] = idx + 1;
	hused++;
}

static void hgrow(void)
{
	int32_t *old = htab;
	unsigned n = old ? 1u << hbits : 0;
	hbits = old ? hbits + 1 : 10;
	htab = calloc(1u << hbits, sizeof *htab);
	if (!htab)
		die("out of memory");
	hused = 0;
	for (unsigned i = 0; i < n; i++)
		if (old[i])
			hinsert(old[i] - 1);
	free(old);
}

static struct task *task_new(int tid)
{
	if (next_free < 0) {
		if (nchunks == (int)(sizeof chunks / sizeof *chunks))
			die("too many tasks");
		chunks[nchunks] = calloc(CHUNK, sizeof(struct task));
		if (!chunks[nchunks])
			die("out of memory");
		for (int i = CHUNK - 1; i >= 0; i--) {
			chunks[nchunks][i].tgid = next_free;    /* free list through tgid */
			next_free = nchunks * CHUNK + i;
		}
		nchunks++;
	}
	if (!htab || (hused + 1) * 2 > 1u << hbits)
		hgrow();
	int idx = next_free;
	struct task *t = slot(idx);
	next_free = t->tgid;
	memset(t, 0, sizeof *t);
	t->tid = tid;
	t->tgid = tid;
	t->statfd = -1;
	t->schedfd = -1;
	t->nr = -1;
	t->state = T_RUNNING;
	hinsert(idx);
	nslots++;
	return t;
}

static void task_del(struct task *t)
{
	unsigned mask = (1u << hbits) - 1, h = hslot(t->tid);
	int idx = -1;
	while (slot(htab[h] - 1) != t)
		h = (h + 1) & mask;
	idx = htab[h] - 1;
	/* backward-shift deletion keeps every probe chain unbroken without tombstones */
	for (unsigned j = (h + 1) & mask; htab[j]; j = (j + 1) & mask) {
		unsigned home = hslot(slot(htab[j] - 1)->tid);
		if (((j - home) & mask) >= ((j - h) & mask)) {
			htab[h] = htab[j];
			h = j;
		}
	}
	htab[h] = 0;
	hused--;
	if (t->statfd >= 0)
		close(t->statfd);
	if (t->schedfd >= 0)
		close(t->schedfd);
	if (t->state == T_HELD)
		held--;
	t->tid = 0;
	t->tgid = next_free;
	next_free = idx;
	nslots--;
}

/* ------------------------------------------------------------------ records */
static void flush(void)
{
	size_t off = 0;
	while (off < outlen && !server_gone) {
		ssize_t n = write(sock, out + off, outlen - off);
		if (n > 0)
			off += (size_t)n;
		else if (n < 0 && errno == EINTR)
			continue;
		else
			server_gone = 1;        /* the server is gone: trace on, report nothing */
	}
	outlen = 0;
	if (server_gone)
		mode = MODE_LIFECYCLE;
}

/* Room for a record of up to `len` bytes at the end of the output buffer. */
static unsigned char *reserve(size_t len)
{
	if (outlen + len > sizeof out)
		flush();
	return out + outlen;
}

/* The header of a `len`-byte record at p (from reserve()); returns its payload. */
static void *put_hdr(unsigned char *p, uint32_t len, uint16_t type, int tid, int cpu, uint64_t ts)
{
	struct hdr *h = (struct hdr *)p;
	h->len = len;
	h->type = type;
	h->flags = 0;
	h->tid = (uint32_t)tid;
	h->cpu = (uint32_t)cpu;
	h->ts = ts;
	outlen += len;
	return p + sizeof *h;
}

#define TASK_HDR(p, len, type, t, ts) put_hdr(p, len, type, (t)->tid, (t)->cpu, ts)

struct comm_body { uint32_t tgid, zero; char comm[COMM_LEN]; };

static void emit_comm(uint16_t type, const struct task *t, uint64_t ts)
{
	struct comm_body *b = TASK_HDR(reserve(48), 48, type, t, ts);
	b->tgid = (uint32_t)t->tgid;
	b->zero = 0;
	memcpy(b->comm, t->comm, COMM_LEN);
}

static void emit_gone(const struct task *t, int status, uint64_t ts)
{
	int32_t *b = TASK_HDR(reserve(32), 32, GONE, t, ts);
	b[0] = t->tgid;
	b[1] = status;
}

/*
 * The faults t took since its last report (the stat read just done counted them): a
 * FAULTS record before the stop's own, in syscalls mode; otherwise only the baseline
 * moves (lifecycle mode reports nothing).
 */
static void report_faults(struct task *t, uint64_t ts)
{
	uint64_t dmin = t->flt[0] - t->flt_rep[0], dmaj = t->flt[1] - t->flt_rep[1];
	if (t->flt[0] < t->flt_rep[0] || t->flt[1] < t->flt_rep[1])
		dmin = dmaj = 0;        /* counts of another task (an exec took over the tid) */
	t->flt_rep[0] = t->flt[0];
	t->flt_rep[1] = t->flt[1];
	if (mode != MODE_SYSCALLS || !t->announced || !(dmin | dmaj))
		return;
	uint32_t *b = TASK_HDR(reserve(40), 40, FAULTS, t, ts);
	b[0] = (uint32_t)t->tgid;
	b[1] = (uint32_t)dmin;
	b[2] = (uint32_t)dmaj;
	b[3] = 0;
}

/* ------------------------------------------------------------------ /proc */
static int read_file(const char *path, char *buf, size_t size)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	ssize_t n = read(fd, buf, size - 1);
	close(fd);
	if (n < 0)
		return -1;
	buf[n] = 0;
	return (int)n;
}

/*
 * /proc/TID/NAME into buf (NUL-terminated) through the task's kept-open *fd (opened on
 * first use); the length read, <= 0 when it cannot be read.
 */
static ssize_t read_proc(const struct task *t, int *fd, const char *name, char *buf, size_t size)
{
	if (*fd < 0) {
		char path[48];
		snprintf(path, sizeof path, "/proc/%d/%s", t->tid, name);
		*fd = open(path, O_RDONLY | O_CLOEXEC);
		if (*fd < 0)
			return -1;
	}
	ssize_t n = pread(*fd, buf, size - 1, 0);
	if (n > 0)
		buf[n] = 0;
	return n;
}

/*
 * Refresh t->cpu from /proc/TID/stat (field 39, "processor": the CPU the task last ran
 * on, where it stopped) and its comm (field 2).  Returns 1 when the comm changed.
 */
static int task_stat(struct task *t)
{
	char buf[1024], name[COMM_LEN];
	if (read_proc(t, &t->statfd, "stat", buf, sizeof buf) <= 0)
		return 0;
	char *open_paren = strchr(buf, '('), *close_paren = strrchr(buf, ')');
	if (!open_paren || !close_paren || close_paren < open_paren)
		return 0;
	size_t len = (size_t)(close_paren - open_paren - 1);
	if (len >= COMM_LEN)
		len = COMM_LEN - 1;
	memset(name, 0, sizeof name);
	memcpy(name, open_paren + 1, len);
	/* field 3 starts two bytes after the ')'; minflt (10) and majflt (12) follow 7 and 9
	 * more spaces, field 39 36 */
	const char *p = close_paren + 2;
	for (int spaces = 0; *p && spaces < 36; p++)
		if (*p == ' ') {
			spaces++;
			if (spaces == 7 || spaces == 9)
				t->flt[spaces == 9] = strtoull(p + 1, NULL, 10);
		}
	if (*p)
		t->cpu = atoi(p);
	if (memcmp(name, t->comm, COMM_LEN) == 0)
		return 0;
	memcpy(t->comm, name, COMM_LEN);
	return 1;
}

/* Field `key` ("Tgid:", "PPid:") of /proc/TID/status, -1 when unreadable. */
static int status_field(int tid, const char *key)
{
	char path[40], buf[2048];
	snprintf(path, sizeof path, "/proc/%d/status", tid);
	if (read_file(path, buf, sizeof buf) < 0)
		return -1;
	char *p = strstr(buf, key);
	return p ? atoi(p + strlen(key)) : -1;
}

/*
 * /proc/TID/schedstat (sched_info): ns on a CPU, ns waiting on a run queue, times switched
 * in.  Short (three numbers, no formatting of 52 fields): about a tenth of a stat read.
 */
static int task_schedstat(struct task *t, uint64_t v[3])
{
	char buf[96];
	if (read_proc(t, &t->schedfd, "schedstat", buf, sizeof buf) <= 0)
		return 0;
	const char *p = buf;
	for (int i = 0; i < 3; i++) {
		uint64_t x = 0;
		if (*p < '0' || *p > '9')
			return 0;
		while (*p >= '0' && *p <= '9')
			x = x * 10 + (uint64_t)(*p++ - '0');
		v[i] = x;
		if (*p == ' ')
			p++;
	}
	return 1;
}

/* ------------------------------------------------------------------ tracee memory */
static ssize_t peek(int tid, void *dst, uint64_t addr, size_t len)
{
	struct iovec local = { dst, len }, remote = { (void *)(uintptr_t)addr, len };
	return process_vm_readv(tid, &local, 1, &remote, 1, 0);
}

/*
 * A NUL-terminated string at addr, at most MAX_CAPTURE bytes, NUL not included; -1 when
 * the first byte cannot be read.  Read a page at a time: process_vm_readv does not split
 * an iovec, so one read across an unmapped page would fail as a whole.
 */
static ssize_t peek_cstring(int tid, unsigned char *dst, uint64_t addr)
{
	size_t got = 0;
	while (got < MAX_CAPTURE) {
		size_t chunk = (size_t)page_size - ((addr + got) & (uint64_t)(page_size - 1));
		if (chunk > MAX_CAPTURE - got)
			chunk = MAX_CAPTURE - got;
		ssize_t n = peek(tid, dst + got, addr + got, chunk);
		if (n <= 0)
			return got ? (ssize_t)got : -1;
		unsigned char *nul = memchr(dst + got, 0, (size_t)n);
		if (nul)
			return nul - dst;
		got += (size_t)n;
	}
	return MAX_CAPTURE;
}

/* ------------------------------------------------------------------ resuming */
/*
 * PTRACE_SYSCALL in syscalls mode and while a reported entry waits for its exit (an entry
 * is never left without its exit), PTRACE_CONT otherwise.
 */
static void resume(struct task *t, int sig)
{
	flush();
	int req = (mode == MODE_SYSCALLS || t->in_syscall) ? PTRACE_SYSCALL : PTRACE_CONT;
	if (ptrace(req, t->tid, 0, sig) == 0 || errno == ESRCH)
		t->state = T_RUNNING;   /* ESRCH: killed meanwhile, its exit is on the way */
	else
		die("resume %d: %s", t->tid, strerror(errno));
}

static int is_stop_signal(int sig)
{
	return sig == SIGSTOP || sig == SIGTSTP || sig == SIGTTIN || sig == SIGTTOU;
}

/*
 * A group-stop (SIGSTOP, ^Z): PTRACE_LISTEN leaves the tracee stopped for its real parent
 * (a shell's job control sees it) while the tracer is told when SIGCONT or another
 * signal arrives (a new PTRACE_EVENT_STOP).
 */
static void listen_task(struct task *t)
{
	flush();
	if (ptrace(PTRACE_LISTEN, t->tid, 0, 0) == 0)
		t->state = T_LISTENING;
	else if (errno == ESRCH)
		t->state = T_RUNNING;
	else
		resume(t, 0);
}

/* ------------------------------------------------------------------ stops */
static void dispatch(struct task *t, int status, uint64_t ts);

/*
 * The local address of the tracee's socket `fd` (getsockname() on a copy of it taken
 * with pidfd_getfd()) into dst, at most size bytes; its length, or -1 (not a socket, the
 * tracee gone).  Only at the exit of the few calls that give a socket its port.
 */
static ssize_t sock_name(int tgid, uint64_t fd, unsigned char *dst, size_t size)
{
	int pidfd = (int)syscall(SYS_pidfd_open, tgid, 0);
	if (pidfd < 0)
		return -1;
	int copy = (int)syscall(SYS_pidfd_getfd, pidfd, (int)fd, 0);
	close(pidfd);
	if (copy < 0)
		return -1;
	socklen_t len = (socklen_t)size;
	int rc = getsockname(copy, (struct sockaddr *)dst, &len);
	close(copy);
	return rc < 0 ? -1 : (ssize_t)(len < size ? len : size);
}

/*
 * The captures of kind `out` (CAP_OUT and CAP_SOCKNAME at an exit stop, the others at an
 * entry stop) of
 * syscall `nr` with registers `args`, appended to the record at rec (len bytes so far);
 * returns the new length, *count the number appended.
 */
static size_t put_captures(struct task *t, unsigned char *rec, size_t len, uint64_t nr,
			   const uint64_t *args, int out, uint32_t *count)
{
	int n = nr < NR_MAX ? cap_count[nr] : 0;
	for (int i = 0; i < n; i++) {
		const struct cap_spec *c = &caps[cap_first[nr] + i];
		uint64_t addr = args[c->argidx];
		unsigned char *dst = rec + len + 8;
		ssize_t got = -1;
		int at_exit = c->kind == CAP_OUT || c->kind == CAP_SOCKNAME;
		if (at_exit != out || (!addr && c->kind != CAP_SOCKNAME))
			continue;
		if (c->kind == CAP_SOCKNAME) {
			got = sock_name(t->tgid, addr, dst, c->param < MAX_CAPTURE ? c->param : MAX_CAPTURE);
		} else if (c->kind == CAP_CSTRING) {
			got = peek_cstring(t->tid, dst, addr);
		} else {
			int64_t want = c->kind == CAP_BUFFER ? (int32_t)args[c->param]   /* an int length */
				: (int64_t)c->param;
			if (want <= 0)
				continue;
			if (want > MAX_CAPTURE)
				want = MAX_CAPTURE;
			got = peek(t->tid, dst, addr, (size_t)want);
		}
		if (got < 0)
			continue;       /* a fault: the model sees no capture (-EFAULT) */
		uint32_t *ch = (uint32_t *)(rec + len);
		ch[0] = c->argidx | (uint32_t)c->kind << 8;
		ch[1] = (uint32_t)got;
		size_t padded = ((size_t)got + 7) & ~(size_t)7;
		memset(dst + got, 0, padded - (size_t)got);
		len += 8 + padded;
		(*count)++;
	}
	return len;
}

static void on_syscall(struct task *t, uint64_t ts)
{
	struct __ptrace_syscall_info info;
	t->interrupted = 0;     /* a syscall stop reports what the interrupt would have */
	if (ptrace(PTRACE_GET_SYSCALL_INFO, t->tid, sizeof info, &info) <= 0) {
		resume(t, 0);
		return;
	}
	uint16_t flags = info.arch == AUDIT_ARCH_I386 ? HDR_COMPAT : 0;
	if (info.op == PTRACE_SYSCALL_INFO_ENTRY) {
		if (mode != MODE_SYSCALLS) {    /* switched to lifecycle: not reported */
			t->in_syscall = 0;
			resume(t, 0);
			return;
		}
		uint64_t nr = info.entry.nr;
		int n = nr < NR_MAX && !flags ? cap_count[nr] : 0;
		unsigned char *rec = reserve(88 + (size_t)n * (8 + MAX_CAPTURE));
		uint64_t *b = TASK_HDR(rec, 88, SYS_ENTER, t, ts);
		((struct hdr *)rec)->flags = flags;
		b[0] = nr;
		memcpy(b + 1, info.entry.args, sizeof info.entry.args);
		uint32_t *tail = (uint32_t *)(b + 7);
		tail[0] = (uint32_t)t->tgid;
		tail[1] = 0;
		size_t len = n ? put_captures(t, rec, 88, nr, info.entry.args, 0, &tail[1]) : 88;
		((struct hdr *)rec)->len = (uint32_t)len;
		outlen += len - 88;
		t->nr = (long)nr;
		memcpy(t->args, info.entry.args, sizeof t->args);
		t->in_syscall = 1;
		t->sched_ts = task_schedstat(t, t->sched) ? ts : 0;
	} else if (info.op == PTRACE_SYSCALL_INFO_EXIT) {
		if (t->in_syscall || mode == MODE_SYSCALLS) {
			/* an exit whose entry was not seen (the switch to syscalls mode came while
			 * the task was inside the syscall): the number is still in orig_rax */
			long nr = t->in_syscall ? t->nr
				: ptrace(PTRACE_PEEKUSER, t->tid, offsetof(struct user_regs_struct, orig_rax), 0);
			/* did it sleep: the time it spent neither running nor runnable since its
			 * entry stop (the two stops' own share included), and how often it was
			 * switched back in besides the resume from its entry stop */
			uint64_t asleep = 0, now_sched[3];
			uint32_t switches = UINT32_MAX;
			if (t->in_syscall && t->sched_ts && task_schedstat(t, now_sched)) {
				uint64_t busy = (now_sched[0] - t->sched[0]) + (now_sched[1] - t->sched[1]);
				uint64_t wall = ts - t->sched_ts;
				asleep = wall > busy ? wall - busy : 0;
				switches = now_sched[2] > t->sched[2] ? (uint32_t)(now_sched[2] - t->sched[2] - 1) : 0;
			}
			int n = t->in_syscall && !flags && info.exit.rval >= 0 && nr >= 0 && nr < NR_MAX
				? cap_count[nr] : 0;
			unsigned char *rec = reserve(64 + (size_t)n * (8 + MAX_CAPTURE));
			uint64_t *b = TASK_HDR(rec, 64, SYS_EXIT, t, ts);
			((struct hdr *)rec)->flags = flags;
			b[0] = (uint64_t)nr;
			b[1] = (uint64_t)info.exit.rval;
			uint32_t *mid = (uint32_t *)(b + 2);
			mid[0] = (uint32_t)t->tgid;
			mid[1] = 0;
			b[3] = asleep;
			uint32_t *tail = (uint32_t *)(b + 4);
			tail[0] = switches;
			tail[1] = 0;
			size_t len = n ? put_captures(t, rec, 64, (uint64_t)nr, t->args, 1, &mid[1]) : 64;
			((struct hdr *)rec)->len = (uint32_t)len;
			outlen += len - 64;
		}
		t->in_syscall = 0;
	}
	resume(t, 0);
}

/*
 * The PTRACE_EVENT_STOP of a switch to syscalls mode: a task stopped on its way out of a
 * syscall (orig_rax is its number; an interrupt or exception from user space leaves -1)
 * whose exit was not reported.  rax is what it returns: an -ERESTART* code when the stop
 * interrupted a sleep the syscall will resume after it.
 */
static void on_interrupted(struct task *t, uint64_t ts)
{
	struct user_regs_struct regs;
	t->interrupted = 0;
	if (ptrace(PTRACE_GETREGS, t->tid, 0, &regs) < 0 || (long)regs.orig_rax < 0)
		return;
	struct {
		uint32_t tgid, zero;
		uint64_t nr;
		int64_t ret;
	} *b = TASK_HDR(reserve(48), 48, INTERRUPTED, t, ts);
	b->tgid = (uint32_t)t->tgid;
	b->zero = 0;
	b->nr = regs.orig_rax;
	b->ret = (int64_t)regs.rax;
}

static void on_signal_stop(struct task *t, int sig, uint64_t ts)
{
	siginfo_t si;
	memset(&si, 0, sizeof si);
	if (ptrace(PTRACE_GETSIGINFO, t->tid, 0, &si) < 0 && errno == ESRCH)
		return;
	int32_t *b = TASK_HDR(reserve(48), 48, SIGNAL, t, ts);
	b[0] = t->tgid;
	b[1] = sig;
	b[2] = si.si_errno;
	b[3] = si.si_code;
	b[4] = si.si_pid;
	b[5] = (int32_t)si.si_uid;
	resume(t, sig);         /* deliver it */
}

/* The newborn `c` is known: report it, then handle the stop it made meanwhile. */
static void announce(const struct task *parent, int parent_tid, struct task *c, int event,
		     uint64_t flags, uint64_t ts)
{
	struct {
		uint32_t parent, child, child_tgid, event;
		uint64_t flags;
		char comm[COMM_LEN];
		uint32_t child_cpu, zero;
	} *b = put_hdr(reserve(72), 72, NEW_TASK, parent_tid, parent ? parent->cpu : c->cpu, ts);
	b->parent = (uint32_t)parent_tid;
	b->child = (uint32_t)c->tid;
	b->child_tgid = (uint32_t)c->tgid;
	b->event = (uint32_t)event;
	b->flags = flags;
	memcpy(b->comm, c->comm, COMM_LEN);
	b->child_cpu = (uint32_t)c->cpu;
	b->zero = 0;
	c->announced = 1;
	if (c->state == T_HELD) {
		held--;
		c->state = T_STOPPED;
		dispatch(c, c->held_status, ts);
	}
}

static void on_new_task(struct task *t, int event, uint64_t ts)
{
	unsigned long child = 0;
	struct user_regs_struct regs;
	uint64_t flags = 0;
	if (ptrace(PTRACE_GETEVENTMSG, t->tid, 0, &child) < 0 ||
	    ptrace(PTRACE_GETREGS, t->tid, 0, &regs) < 0) {
		resume(t, 0);
		return;
	}
	switch (regs.orig_rax) {
	case 56:        /* clone(flags, newsp, parent_tid, child_tid, tls) */
		flags = regs.rdi;
		break;
	case 435:       /* clone3(struct clone_args *uargs, size): flags is its first u64 */
		if (peek(t->tid, &flags, regs.rdi, sizeof flags) != sizeof flags)
			flags = 0;
		break;
	case 57:        /* fork */
		flags = SIGCHLD;
		break;
	case 58:        /* vfork */
		flags = CLONE_VM | CLONE_VFORK | SIGCHLD;
		break;
	}
	struct task *c = task_find((int)child);
	if (c && c->announced) {        /* announced already (its parent's event came late) */
		resume(t, 0);
		return;
	}
	if (!c) {
		/* it has not stopped yet; wake_up_new_task() placed it already: the CPU
		 * it will first run on (its stopped first stop reads it itself) */
		c = task_new((int)child);
		c->cpu = t->cpu;
		task_stat(c);
	}
	c->tgid = flags & CLONE_THREAD ? t->tgid : (int)child;
	memcpy(c->comm, t->comm, COMM_LEN);     /* copy_process copies the comm */
	announce(t, t->tid, c, event, flags, ts);
	resume(t, 0);
}

/*
 * A stop of a tid not in the table: a new task whose parent's fork/clone event has not
 * been seen yet.  It stays stopped until that event says who made it (its records must
 * follow its NEW_TASK); should its creator die before reporting the event, the creator's
 * end announces it instead (release_orphans).
 */
static void on_newborn(int tid, int status)
{
	struct task *c = task_new(tid);
	int tgid = status_field(tid, "Tgid:");
	c->tgid = tgid > 0 ? tgid : tid;
	c->creator = tgid > 0 && tgid != tid ? tgid : status_field(tid, "PPid:");
	c->state = T_HELD;
	c->held_status = status;
	held++;
	task_stat(c);
	if (!task_find(c->creator))     /* its creator is gone already */
		announce(NULL, c->creator > 0 ? c->creator : 0, c, 0, 0, now());
}

static void release_orphans(int tgid, uint64_t ts)
{
	for (int i = 0; held && i < nchunks * CHUNK; i++) {
		struct task *c = slot(i);
		if (c->tid && c->state == T_HELD && c->creator == tgid)
			announce(NULL, tgid, c, 0, 0, ts);
	}
}

/*
 * MAPS: /proc/PID/maps of a new image at its exec stop (its mappings before the
 * interpreter runs), at most MAX_MAPS bytes.
 */
static void emit_maps(const struct task *t, uint64_t ts)
{
	char path[40];
	snprintf(path, sizeof path, "/proc/%d/maps", t->tgid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	unsigned char *rec = reserve(32 + MAX_MAPS);
	size_t got = 0;
	ssize_t n;
	while (got < MAX_MAPS && (n = read(fd, rec + 32 + got, MAX_MAPS - got)) > 0)
		got += (size_t)n;
	close(fd);
	size_t padded = (got + 7) & ~(size_t)7;
	memset(rec + 32 + got, 0, padded - got);
	uint32_t *b = TASK_HDR(rec, (uint32_t)(32 + padded), MAPS, t, ts);
	b[0] = (uint32_t)t->tgid;
	b[1] = (uint32_t)got;
}

/* AT_EXECFN of the new image: bprm->filename, what sched_process_exec prints. */
static ssize_t exec_filename(int pid, unsigned char *dst)
{
	char path[40];
	uint64_t auxv[2 * 64];
	snprintf(path, sizeof path, "/proc/%d/auxv", pid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	ssize_t n = read(fd, auxv, sizeof auxv);
	close(fd);
	for (ssize_t i = 0; i + 1 < n / 8; i += 2)
		if (auxv[i] == AT_EXECFN)
			return peek_cstring(pid, dst, auxv[i + 1]);
	return -1;
}

/*
 * PTRACE_EVENT_EXEC, reported under the thread group id.  When a non-leader thread
 * exec'd, the event message is its old tid: it has taken over the leader's tid (the old
 * leader is gone without an exit report) and carries on its syscall state.
 */
static void on_exec(int pid, uint64_t ts)
{
	unsigned long old = (unsigned long)pid;
	ptrace(PTRACE_GETEVENTMSG, pid, 0, &old);
	struct task *t = task_find(pid), *o = task_find((int)old);
	if (!t)
		t = task_new(pid);
	if (o && o != t) {
		t->nr = o->nr;
		t->in_syscall = o->in_syscall;
		memcpy(t->args, o->args, sizeof t->args);
		memcpy(t->sched, o->sched, sizeof t->sched);
		memcpy(t->flt_rep, o->flt_rep, sizeof t->flt_rep);
		t->sched_ts = 0;        /* schedstat of another tid: no comparison */
		t->announced = 1;
		task_del(o);
	}
	if (t->statfd >= 0) {
		close(t->statfd);       /* it may belong to the old leader */
		t->statfd = -1;
	}
	if (t->schedfd >= 0) {
		close(t->schedfd);
		t->schedfd = -1;
	}
	t->tgid = pid;
	t->exited = 0;
	t->state = T_STOPPED;
	task_stat(t);
	report_faults(t, ts);   /* the exec's own: its argument pages */
	if (mode == MODE_SYSCALLS)
		emit_maps(t, ts);
	unsigned char *rec = reserve(56 + MAX_CAPTURE + 8);
	struct {
		uint32_t old_tid, tgid;
		char comm[COMM_LEN];
		uint32_t filename_len, zero;
	} *b = TASK_HDR(rec, 56, EXEC, t, ts);
	ssize_t n = exec_filename(pid, rec + 56);
	if (n < 0)
		n = 0;
	size_t padded = ((size_t)n + 7) & ~(size_t)7;
	memset(rec + 56 + n, 0, padded - (size_t)n);
	b->old_tid = (uint32_t)old;
	b->tgid = (uint32_t)pid;
	memcpy(b->comm, t->comm, COMM_LEN);
	b->filename_len = (uint32_t)n;
	b->zero = 0;
	((struct hdr *)rec)->len = (uint32_t)(56 + padded);
	outlen += padded;
	resume(t, 0);
}

/* Another live (not exited) task of t's thread group? */
static int group_has_others(const struct task *t)
{
	for (int i = 0; i < nchunks * CHUNK; i++) {
		const struct task *o = slot(i);
		if (o->tid && o != t && o->tgid == t->tgid && !o->exited)
			return 1;
	}
	return 0;
}

static void on_exit_event(struct task *t, uint64_t ts)
{
	unsigned long msg = 0;
	ptrace(PTRACE_GETEVENTMSG, t->tid, 0, &msg);
	int status = (int)msg, group = 1;
	if (!WIFSIGNALED(status)) {
		/* exit(2) of one thread ends the group only when it was the last one;
		 * exit_group and a fatal signal end it all */
		long nr = ptrace(PTRACE_PEEKUSER, t->tid, offsetof(struct user_regs_struct, orig_rax), 0);
		if (nr == 60)
			group = !group_has_others(t);
	}
	t->exited = 1;
	t->interrupted = 0;
	int32_t *b = TASK_HDR(reserve(40), 40, EXIT, t, ts);
	b[0] = t->tgid;
	b[1] = status;
	b[2] = group;
	b[3] = 0;
	resume(t, 0);
}

static void dispatch(struct task *t, int status, uint64_t ts)
{
	int sig = WSTOPSIG(status), event = (unsigned)status >> 16;
	t->state = T_STOPPED;
	if (sig != (SIGTRAP | 0x80) || ts - t->stat_ts >= SLEPT_NS) {
		t->stat_ts = ts;
		if (task_stat(t) && t->announced)
			emit_comm(COMM, t, ts);
		report_faults(t, ts);
	}
	if (sig == (SIGTRAP | 0x80))
		on_syscall(t, ts);
	else if (event == 0)
		on_signal_stop(t, sig, ts);
	else if (event == PTRACE_EVENT_STOP) {
		if (is_stop_signal(sig))
			listen_task(t);
		else {
			if (t->interrupted)
				on_interrupted(t, ts);
			resume(t, 0);   /* a new task's first stop, PTRACE_INTERRUPT, SIGCONT */
		}
	} else if (event == PTRACE_EVENT_FORK || event == PTRACE_EVENT_VFORK ||
		   event == PTRACE_EVENT_CLONE)
		on_new_task(t, event, ts);
	else if (event == PTRACE_EVENT_EXIT)
		on_exit_event(t, ts);
	else
		resume(t, 0);
}

static void on_stop(int pid, int status)
{
	uint64_t ts = now();
	struct task *t = task_find(pid);
	if (WIFEXITED(status) || WIFSIGNALED(status)) {
		if (pid == root_pid)
			root_status = status;
		if (!t)
			return;
		if (t->announced)
			emit_gone(t, status, ts);
		int tgid = t->tgid;
		task_del(t);
		if (held)
			release_orphans(tgid, ts);
		flush();
		return;
	}
	if (!WIFSTOPPED(status))
		return;
	if ((unsigned)status >> 16 == PTRACE_EVENT_EXEC) {
		on_exec(pid, ts);
		return;
	}
	if (!t) {
		on_newborn(pid, status);
		return;
	}
	dispatch(t, status, ts);
}

/* ------------------------------------------------------------------ control messages */
static void set_mode(uint32_t m, uint32_t seq)
{
	if (m == MODE_SYSCALLS && mode != MODE_SYSCALLS) {
		/* so that no syscall made after the switch is missed, stop every running
		 * tracee now: each is resumed with PTRACE_SYSCALL from its PTRACE_EVENT_STOP */
		for (int i = 0; i < nchunks * CHUNK; i++) {
			struct task *t = slot(i);
			if (t->tid && t->state == T_RUNNING && ptrace(PTRACE_INTERRUPT, t->tid, 0, 0) == 0)
				t->interrupted = !t->in_syscall;   /* else its exit is reported */
		}
	}
	mode = m == MODE_SYSCALLS ? MODE_SYSCALLS : MODE_LIFECYCLE;
	uint32_t *b = put_hdr(reserve(32), 32, ACK, 0, 0, now());
	b[0] = seq;
	b[1] = 0;
	flush();
}

static void set_capture(const unsigned char *p, uint32_t n)
{
	memset(cap_count, 0, sizeof cap_count);
	if (n > CAP_MAX)
		die("CAPTURE: %u entries (at most %d)", n, CAP_MAX);
	for (uint32_t i = 0; i < n; i++, p += 8) {
		uint16_t nr;
		memcpy(&nr, p, 2);
		if (nr >= NR_MAX || p[2] >= 6 || p[3] < CAP_CSTRING || p[3] > CAP_SOCKNAME)
			die("CAPTURE: bad entry %u (nr %u arg %u kind %u)", i, nr, p[2], p[3]);
		if (i && nr < *(const uint16_t *)(p - 8))
			die("CAPTURE: entries not sorted by syscall number");
		if (!cap_count[nr])
			cap_first[nr] = (uint16_t)i;
		if (++cap_count[nr] > 6)   /* one per argument: a SYS_ENTER fits in `out` */
			die("CAPTURE: more than 6 entries for syscall %u", nr);
		caps[i].argidx = p[2];
		caps[i].kind = p[3];
		memcpy(&caps[i].param, p + 4, 4);
		if (caps[i].kind == CAP_BUFFER && caps[i].param >= 6)
			die("CAPTURE: bad length argument %u", caps[i].param);
	}
	have_capture = 1;
}

/* Read and apply every complete control message available; 0 when the server is gone. */
static int read_control(void)
{
	for (;;) {
		if (ctllen == sizeof ctl)
			die("control message too long");
		ssize_t n = recv(sock, ctl + ctllen, sizeof ctl - ctllen, MSG_DONTWAIT);
		if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
			server_gone = 1;
			mode = MODE_LIFECYCLE;
			return 0;
		}
		if (n < 0 && errno == EAGAIN)
			break;
		if (n > 0)
			ctllen += (size_t)n;
	}
	size_t off = 0;
	while (ctllen - off >= sizeof(struct hdr)) {
		struct hdr h;
		memcpy(&h, ctl + off, sizeof h);
		if (h.len < sizeof h || h.len % 8)
			die("bad control message length %u", h.len);
		if (ctllen - off < h.len)
			break;
		const unsigned char *body = ctl + off + sizeof h;
		uint32_t a, b;
		memcpy(&a, body, 4);
		memcpy(&b, body + 4, 4);
		if (h.type == MODE)
			set_mode(a, b);
		else if (h.type == CAPTURE)
			set_capture(body + 8, a);
		else
			die("unknown control message type %u", h.type);
		off += h.len;
	}
	memmove(ctl, ctl + off, ctllen - off);
	ctllen -= off;
	return 1;
}

/* SIGTERM/SIGHUP sent to the tracer go to CMD (to every traced process once CMD is gone). */
static void forward_signal(void)
{
	int sig = fwd_sig;
	fwd_sig = 0;
	if (root_status < 0 && root_pid > 0) {
		kill(root_pid, sig);
		return;
	}
	for (int i = 0; i < nchunks * CHUNK; i++) {
		struct task *t = slot(i);
		if (t->tid && t->tid == t->tgid && t->announced)
			kill(t->tid, sig);
	}
}

/* ------------------------------------------------------------------ starting CMD */
/* The program execve will run: CMD itself when it has a '/', else the first executable
 * regular file named CMD on $PATH (the tracer searches, so the child makes one execve). */
static int resolve(const char *cmd, char *path, size_t size)
{
	if (strchr(cmd, '/')) {
		snprintf(path, size, "%s", cmd);
		return 0;
	}
	const char *dirs = getenv("PATH");
	if (!dirs)
		dirs = "/usr/local/bin:/usr/bin:/bin";
	int found_denied = 0;
	while (*dirs) {
		size_t n = strcspn(dirs, ":");
		struct stat st;
		snprintf(path, size, "%.*s%s%s", (int)n, dirs, n ? "/" : "", cmd);
		if (stat(path, &st) == 0 && S_ISREG(st.st_mode)) {
			if (access(path, X_OK) == 0)
				return 0;
			found_denied = 1;
		}
		dirs += n + (dirs[n] == ':');
	}
	return found_denied ? EACCES : ENOENT;
}

static void child_exec(const char *path, char **argv, int go, int err)
{
	static const int reset[] = { SIGINT, SIGQUIT, SIGTSTP, SIGTTIN, SIGTTOU, SIGPIPE, SIGUSR1,
				     SIGTERM, SIGHUP };
	sigset_t none;
	for (size_t i = 0; i < sizeof reset / sizeof *reset; i++)
		signal(reset[i], SIG_DFL);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	setrlimit(RLIMIT_NOFILE, &nofile_orig);
	char c;
	while (read(go, &c, 1) < 0 && errno == EINTR)   /* EOF: the tracer has seized us */
		;
	execv(path, argv);
	if (errno == ENOEXEC) {         /* a script without #!: what execvp does */
		int n = 0;
		while (argv[n])
			n++;
		char **sh = calloc((size_t)n + 2, sizeof *sh);
		if (sh) {
			sh[0] = "sh";
			sh[1] = (char *)path;
			memcpy(sh + 2, argv + 1, (size_t)n * sizeof *sh);
			execv("/bin/sh", sh);
		}
	}
	int e = errno;
	while (write(err, &e, sizeof e) < 0 && errno == EINTR)
		;
	_exit(e == ENOENT ? 127 : 126);
}

static void usage(void)
{
	fputs("usage: tracefs-sim-tracer --sock FD [--go-fd FD] [--] CMD [ARGS...]\n", stderr);
	exit(2);
}

int main(int argc, char **argv)
{
	int go_fd = -1, i = 1;
	for (; i < argc; i++) {
		if (!strcmp(argv[i], "--sock") && i + 1 < argc)
			sock = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--go-fd") && i + 1 < argc)
			go_fd = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--")) {
			i++;
			break;
		} else if (argv[i][0] == '-')
			usage();
		else
			break;
	}
	if (sock < 0 || i >= argc)
		usage();
	char **cmd = argv + i;
	page_size = sysconf(_SC_PAGESIZE);

	/* the terminal's signals are CMD's; SIGTERM/SIGHUP are forwarded to it */
	static const int ignored[] = { SIGINT, SIGQUIT, SIGTSTP, SIGTTIN, SIGTTOU, SIGPIPE };
	for (size_t k = 0; k < sizeof ignored / sizeof *ignored; k++)
		signal(ignored[k], SIG_IGN);
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_sigaction = on_signal;
	sa.sa_flags = SA_SIGINFO;       /* no SA_RESTART: the signal interrupts wait4 */
	sigemptyset(&sa.sa_mask);
	sigaction(SIGUSR1, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	/* the tracer dies with whoever started it (run, dump): its tracees with it */
	pid_t parent = getppid();
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != parent)
		return 2;
	/* a kept-open /proc/TID/stat per task: room for thousands */
	getrlimit(RLIMIT_NOFILE, &nofile_orig);
	struct rlimit raised = nofile_orig;
	raised.rlim_cur = raised.rlim_max;
	setrlimit(RLIMIT_NOFILE, &raised);
	if (fcntl(sock, F_SETFD, FD_CLOEXEC) < 0)
		die("--sock %d: %s", sock, strerror(errno));
	if (go_fd >= 0)
		fcntl(go_fd, F_SETFD, FD_CLOEXEC);

	/* wait for the server's CAPTURE table (and run's go) */
	while (!have_capture || go_fd >= 0) {
		struct pollfd p[2] = { { sock, POLLIN, 0 }, { go_fd, POLLIN, 0 } };
		if (fwd_sig)
			return 128 + fwd_sig;
		tracer_wake = 0;
		if (poll(p, go_fd >= 0 ? 2 : 1, -1) < 0) {
			if (errno == EINTR)
				continue;
			die("poll: %s", strerror(errno));
		}
		if (p[0].revents && !read_control())
			die("the server closed the socket before CMD started");
		if (go_fd >= 0 && p[1].revents) {
			char c;
			ssize_t n = read(go_fd, &c, 1);
			if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN)) {
				close(go_fd);
				go_fd = -1;
			}
		}
	}

	char path[4096];
	int err = resolve(cmd[0], path, sizeof path);
	if (err) {
		if (err == ENOENT && !strchr(cmd[0], '/'))
			fprintf(stderr, "tracefs-sim: %s: command not found\n", cmd[0]);
		else
			fprintf(stderr, "tracefs-sim: %s: %s\n", cmd[0], strerror(err));
		return err == ENOENT ? 127 : 126;
	}
	int go[2], errp[2];
	if (pipe2(go, O_CLOEXEC) < 0 || pipe2(errp, O_CLOEXEC) < 0)
		die("pipe: %s", strerror(errno));
	root_pid = fork();
	if (root_pid < 0)
		die("fork: %s", strerror(errno));
	if (root_pid == 0) {
		close(go[1]);
		close(errp[0]);
		child_exec(path, cmd, go[0], errp[1]);
	}
	close(go[0]);
	close(errp[1]);
	if (ptrace(PTRACE_SEIZE, root_pid, 0,
		   PTRACE_O_TRACESYSGOOD | PTRACE_O_TRACEFORK | PTRACE_O_TRACEVFORK |
		   PTRACE_O_TRACECLONE | PTRACE_O_TRACEEXEC | PTRACE_O_TRACEEXIT |
		   PTRACE_O_EXITKILL) < 0) {
		int e = errno;
		kill(root_pid, SIGKILL);
		die("PTRACE_SEIZE %d: %s", root_pid, strerror(e));
	}
	struct task *t = task_new(root_pid);
	t->announced = 1;
	task_stat(t);
	memcpy(t->flt_rep, t->flt, sizeof t->flt);      /* the tracer's child's own faults */
	emit_comm(ATTACHED, t, now());
	flush();
	if (mode == MODE_SYSCALLS)      /* a seized task runs on: stop it to trace its syscalls */
		ptrace(PTRACE_INTERRUPT, root_pid, 0, 0);
	close(go[1]);           /* CMD may exec now */

	for (;;) {
		if (tracer_wake) {
			tracer_wake = 0;
			if (fwd_sig)
				forward_signal();
			if (!server_gone)
				read_control();
		}
		int status;
		long pid = tracer_wait4(&status);
		if (pid > 0)
			on_stop((int)pid, status);
		else if (pid == -EINTR)
			continue;
		else if (pid == -ECHILD)
			break;
		else
			die("wait4: %s", strerror((int)-pid));
	}
	flush();
	int e = 0;
	if (read(errp[0], &e, sizeof e) == sizeof e) {
		if (e == ENOENT && !strchr(cmd[0], '/'))
			fprintf(stderr, "tracefs-sim: %s: command not found\n", cmd[0]);
		else
			fprintf(stderr, "tracefs-sim: %s: %s\n", cmd[0], strerror(e));
	}
	if (root_status < 0)
		return 2;
	return WIFSIGNALED(root_status) ? 128 + WTERMSIG(root_status) : WEXITSTATUS(root_status);
}
