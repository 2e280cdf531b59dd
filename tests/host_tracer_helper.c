/*
 * The program tests/test_host_tracer.py runs under the tracer: static, no libc (every
 * syscall it makes is one of the calls below, none from a C library's start-up), so the
 * test can assert the whole syscall sequence.
 *
 *   helper seq TMPDIR    the fixed sequence (see seq()), then execve of itself "again"
 *   helper again         exit_group(0)
 *   helper loop N        N getppid()
 *   helper tick N MS     N times getppid() and a nanosleep of MS ms
 *   helper forkmany N    fork N children that exit at once, wait4 for each
 *   helper kill SIG      kill(getpid(), SIG)
 *   helper ignoreterm    ignore SIGTERM, then sleep for 60 s
 *   helper exit N        exit_group(N)
 */
#define AT_FDCWD -100
#define O_DIRECTORY 0200000
#define SIGTERM 15

static long sys6(long n, long a, long b, long c, long d, long e, long f)
{
	register long r10 __asm__("r10") = d;
	register long r8 __asm__("r8") = e;
	register long r9 __asm__("r9") = f;
	long ret;
	__asm__ volatile("syscall" : "=a"(ret) : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8),
			 "r"(r9) : "rcx", "r11", "memory");
	return ret;
}
#define sys(n, a, b, c) sys6(n, (long)(a), (long)(b), (long)(c), 0, 0, 0)

enum { NR_write = 1, NR_close = 3, NR_rt_sigaction = 13, NR_nanosleep = 35, NR_getpid = 39,
       NR_fork = 57, NR_execve = 59, NR_wait4 = 61, NR_kill = 62, NR_uname = 63,
       NR_mkdir = 83, NR_rmdir = 84, NR_getppid = 110, NR_getdents64 = 217,
       NR_exit_group = 231, NR_openat = 257 };

static long num(const char *s)
{
	long n = 0;
	while (*s >= '0' && *s <= '9')
		n = n * 10 + (*s++ - '0');
	return n;
}

static int eq(const char *a, const char *b)
{
	while (*a && *a == *b)
		a++, b++;
	return *a == *b;
}

static char buf[4096];
static struct { long sec, nsec; } ts;

static void seq(char **argv, char **envp)
{
	static char path[512];
	char *p = path;
	const char *s = argv[2];
	while (*s)
		*p++ = *s++;
	*p++ = '/', *p++ = 'd', *p = 0;

	sys(NR_getppid, 0, 0, 0);
	sys(NR_write, 1, "hello\n", 6);
	sys6(NR_openat, AT_FDCWD, (long)"/nonexistent/tracefs-sim", 0, 0, 0, 0);
	ts.sec = 0, ts.nsec = 1000000;
	sys(NR_nanosleep, &ts, 0, 0);
	sys(NR_mkdir, path, 0755, 0);
	sys(NR_rmdir, path, 0, 0);
	long fd = sys6(NR_openat, AT_FDCWD, (long)argv[2], O_DIRECTORY, 0, 0, 0);
	sys(NR_getdents64, fd, buf, sizeof buf);
	sys(NR_close, fd, 0, 0);
	sys(NR_uname, buf, 0, 0);
	sys(NR_kill, sys(NR_getpid, 0, 0, 0), 0, 0);
	long pid = sys(NR_fork, 0, 0, 0);
	if (pid == 0)
		sys(NR_exit_group, 3, 0, 0);
	int status;
	sys6(NR_wait4, pid, (long)&status, 0, 0, 0, 0);
	char *again[] = { argv[0], "again", 0 };
	sys(NR_execve, argv[0], again, envp);
	sys(NR_exit_group, 99, 0, 0);
}

void cmain(long *sp)
{
	long argc = sp[0];
	char **argv = (char **)(sp + 1), **envp = argv + argc + 1;
	const char *mode = argc > 1 ? argv[1] : "";
	if (eq(mode, "seq") && argc > 2)
		seq(argv, envp);
	else if (eq(mode, "loop") && argc > 2)
		for (long n = num(argv[2]); n > 0; n--)
			sys(NR_getppid, 0, 0, 0);
	else if (eq(mode, "tick") && argc > 3) {
		ts.sec = 0, ts.nsec = num(argv[3]) * 1000000;
		for (long n = num(argv[2]); n > 0; n--) {
			sys(NR_getppid, 0, 0, 0);
			sys(NR_nanosleep, &ts, 0, 0);
		}
	} else if (eq(mode, "forkmany") && argc > 2) {
		long n = num(argv[2]);
		for (long i = 0; i < n; i++)
			if (sys(NR_fork, 0, 0, 0) == 0)
				sys(NR_exit_group, 0, 0, 0);
		for (long i = 0; i < n; i++)
			sys6(NR_wait4, -1, 0, 0, 0, 0, 0);
	} else if (eq(mode, "kill") && argc > 2)
		sys(NR_kill, sys(NR_getpid, 0, 0, 0), num(argv[2]), 0);
	else if (eq(mode, "ignoreterm")) {
		long act[4] = { 1 /* SIG_IGN */, 0, 0, 0 };
		sys6(NR_rt_sigaction, SIGTERM, (long)act, 0, 8, 0, 0);
		ts.sec = 60, ts.nsec = 0;
		sys(NR_nanosleep, &ts, 0, 0);
	} else if (eq(mode, "exit") && argc > 2)
		sys(NR_exit_group, num(argv[2]), 0, 0);
	sys(NR_exit_group, 0, 0, 0);
}

__asm__(".globl _start\n"
	"_start:\n"
	"	xor %rbp, %rbp\n"
	"	mov %rsp, %rdi\n"
	"	and $-16, %rsp\n"
	"	call cmain\n"
	"	hlt\n");
