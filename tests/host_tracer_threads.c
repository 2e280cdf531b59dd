/*
 * Multi-threaded cases for tests/test_host_tracer.py (static, with libc and pthreads).
 *
 *   threads threads 2        two threads that each call getppid() and end; main joins them
 *   threads threadexec       a non-leader thread execs this program "again"
 *   threads midsyscall       a thread blocks in read(2); main ends the process meanwhile
 *   threads rename NAME      prctl(PR_SET_NAME, NAME), then getppid()
 *   threads again            exit 0
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static char *self;
static int fds[2];

static void *getppid_thread(void *arg)
{
	(void)arg;
	syscall(SYS_getppid);
	return NULL;
}

static void *exec_thread(void *arg)
{
	(void)arg;
	char *argv[] = { self, "again", NULL };
	execv(self, argv);
	_exit(99);
}

static void *read_thread(void *arg)
{
	char c;
	(void)arg;
	syscall(SYS_read, fds[0], &c, 1);
	return NULL;
}

int main(int argc, char **argv)
{
	pthread_t th[8];
	self = argv[0];
	if (argc > 2 && !strcmp(argv[1], "threads")) {
		int n = atoi(argv[2]);
		for (int i = 0; i < n; i++)
			pthread_create(&th[i], NULL, getppid_thread, NULL);
		for (int i = 0; i < n; i++)
			pthread_join(th[i], NULL);
	} else if (argc > 1 && !strcmp(argv[1], "threadexec")) {
		pthread_create(&th[0], NULL, exec_thread, NULL);
		pthread_join(th[0], NULL);
		return 98;
	} else if (argc > 1 && !strcmp(argv[1], "midsyscall")) {
		struct timespec ts = { 0, 20 * 1000 * 1000 };
		if (pipe(fds))
			return 97;
		pthread_create(&th[0], NULL, read_thread, NULL);
		nanosleep(&ts, NULL);
		syscall(SYS_exit_group, 0);
	} else if (argc > 2 && !strcmp(argv[1], "rename")) {
		prctl(PR_SET_NAME, argv[2]);
		syscall(SYS_getppid);
	}
	return 0;
}
