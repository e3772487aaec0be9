/* Per-call cost of the system calls a command makes most, for bench/syscalls.py: run bare
 * and inside a kennel sandbox, the difference is what the sandbox adds to each call (the
 * seccomp filter's entry, Landlock's check of each open). Times N calls of each in a
 * tight loop, in the current folder, and prints "name nanoseconds" lines. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e9 + t.tv_nsec;
}

int main(int argc, char **argv) {
    int n = argc > 1 ? atoi(argv[1]) : 100000;
    struct stat st;
    char buf[64];
    mkdir("syscalls-bench", 0755);
    int f = open("syscalls-bench/file", O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (f < 0 || write(f, "x", 1) != 1 || close(f) != 0) {
        perror("syscalls-bench/file");
        return 1;
    }
    double t0 = now();
    for (int i = 0; i < n; i++)
        getppid();
    printf("getppid %.1f\n", (now() - t0) / n);
    t0 = now();
    for (int i = 0; i < n; i++)
        fstatat(AT_FDCWD, "syscalls-bench/file", &st, AT_SYMLINK_NOFOLLOW);
    printf("lstat %.1f\n", (now() - t0) / n);
    t0 = now();
    for (int i = 0; i < n; i++)
        close(open("syscalls-bench", O_RDONLY | O_DIRECTORY));
    printf("open-close-folder %.1f\n", (now() - t0) / n);
    t0 = now();
    for (int i = 0; i < n; i++) {
        int fd = open("syscalls-bench/file", O_RDONLY);
        if (read(fd, buf, sizeof buf) < 0)
            return 1;
        close(fd);
    }
    printf("open-read-close-file %.1f\n", (now() - t0) / n);
    unlink("syscalls-bench/file");
    rmdir("syscalls-bench");
    return 0;
}
