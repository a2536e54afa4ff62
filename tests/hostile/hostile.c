/* cordon-hostile: a trainer that tries one escape, chosen by argv[1], and reports what happened.
 *
 * Output: one line "held <how>" when the attempt failed, "ESCAPED <what>" when it worked.
 * Refuses to run outside the Cordon sandbox (hostname "cordon*", not uid 0, not PID 1), so it can
 * never harm the host it is built on.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/netlink.h>
#include <linux/sched.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <dirent.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

static int report(const char* what, long rc, int err);
/* Calls first, then reads errno (argument evaluation order is unspecified). */
#define TRY(what, call)                 \
  do {                                  \
    errno = 0;                          \
    long rc_ = (long)(call);            \
    return report((what), rc_, errno);  \
  } while (0)

static int report(const char* what, long rc, int err) {
  if (rc < 0) {
    printf("held %s errno=%s\n", what, strerrorname_np(err));
    return 0;
  }
  printf("ESCAPED %s rc=%ld\n", what, rc);
  return 1;
}

/* To a port on 127.0.0.1: the job's own loopback, never the host's. TCP is refused there; a
 * UDP datagram goes out and the port-unreachable answer comes back as ECONNREFUSED. */
static int net(int family, int type, int port) {
  int s = socket(family, type, 0);
  if (s < 0) return report("socket", s, errno);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  int rc = connect(s, (struct sockaddr*)&a, sizeof(a));
  if (rc != 0 || type != SOCK_DGRAM) return report("connect", rc, errno);
  if (send(s, "pii", 3, 0) != 3) return report("send", -1, errno);
  struct timeval tv = {2, 0};
  setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  char buf[8];
  long rc2 = recv(s, buf, sizeof(buf), 0);
  return report("recv", rc2, errno);
}

/* Anywhere but loopback: the empty network namespace has no route. */
static int egress(void) {
  int escaped = 0;
  struct sockaddr_in v4 = {.sin_family = AF_INET, .sin_port = htons(80)};
  inet_pton(AF_INET, "192.0.2.1", &v4.sin_addr);
  struct sockaddr_in6 v6 = {.sin6_family = AF_INET6, .sin6_port = htons(80)};
  inet_pton(AF_INET6, "2001:db8::1", &v6.sin6_addr);
  const struct {
    const char* what;
    int family, type;
    const struct sockaddr* to;
    socklen_t len;
  } tries[] = {{"tcp4", AF_INET, SOCK_STREAM, (struct sockaddr*)&v4, sizeof(v4)},
               {"udp4", AF_INET, SOCK_DGRAM, (struct sockaddr*)&v4, sizeof(v4)},
               {"tcp6", AF_INET6, SOCK_STREAM, (struct sockaddr*)&v6, sizeof(v6)},
               {"udp6", AF_INET6, SOCK_DGRAM, (struct sockaddr*)&v6, sizeof(v6)}};
  for (size_t i = 0; i < sizeof(tries) / sizeof(tries[0]); ++i) {
    int s = socket(tries[i].family, tries[i].type, 0);
    long rc = tries[i].type == SOCK_STREAM ? connect(s, tries[i].to, tries[i].len)
                                           : sendto(s, "pii", 3, 0, tries[i].to, tries[i].len);
    escaped |= report(tries[i].what, rc, errno);
    close(s);
  }
  return escaped;
}

/* A socket the sandbox allows: prints "<what> socket ok". */
static int allowed_socket(const char* what, int family, int type, int protocol) {
  int s = socket(family, type, protocol);
  printf("%s socket %s\n", what, s >= 0 ? "ok" : strerrorname_np(errno));
  return s < 0;
}

static int open_path(const char* path, int flags) {
  int fd = open(path, flags | O_CLOEXEC, 0600);
  int err = errno;
  if (fd >= 0 && (flags & O_ACCMODE) != O_RDONLY) {
    ssize_t n = write(fd, "x", 1);
    if (n < 0) return report(path, -1, errno);
  }
  return report(path, fd, err);
}

static int inherited_fds(void) {
  int open_fds = 0;
  for (int fd = 3; fd < 4096; ++fd) {
    if (fcntl(fd, F_GETFD) >= 0) {
      printf("open fd %d\n", fd);
      ++open_fds;
    }
  }
  if (open_fds == 0) printf("held fds errno=EBADF\n");
  else printf("ESCAPED fds count=%d\n", open_fds);
  return open_fds != 0;
}

/* Each denied syscall with arguments that would otherwise reach the kernel's own checks. */
static long denied(const char* name) {
  char buf[64] = {0};
  if (!strcmp(name, "mount")) return syscall(SYS_mount, "none", "/tmp", "tmpfs", 0, 0);
  if (!strcmp(name, "umount2")) return syscall(SYS_umount2, "/tmp", 0);
  if (!strcmp(name, "pivot_root")) return syscall(SYS_pivot_root, "/tmp", "/tmp");
  if (!strcmp(name, "chroot")) return syscall(SYS_chroot, "/tmp");
  if (!strcmp(name, "unshare")) return syscall(SYS_unshare, CLONE_NEWUSER);
  if (!strcmp(name, "setns")) return syscall(SYS_setns, 0, 0);
  if (!strcmp(name, "clone")) return syscall(SYS_clone, CLONE_NEWUSER | SIGCHLD, 0, 0, 0, 0);
  if (!strcmp(name, "clone3")) {
    struct clone_args args = {.flags = CLONE_NEWUSER, .exit_signal = SIGCHLD};
    return syscall(SYS_clone3, &args, sizeof(args));
  }
  if (!strcmp(name, "ptrace")) return syscall(SYS_ptrace, 16 /*ATTACH*/, 1, 0, 0);
  if (!strcmp(name, "process_vm_readv")) return syscall(SYS_process_vm_readv, 1, 0, 0, 0, 0, 0);
  if (!strcmp(name, "process_vm_writev")) return syscall(SYS_process_vm_writev, 1, 0, 0, 0, 0, 0);
  if (!strcmp(name, "bpf")) return syscall(SYS_bpf, 0, buf, 0);
  if (!strcmp(name, "perf_event_open")) return syscall(SYS_perf_event_open, buf, 0, -1, -1, 0);
  if (!strcmp(name, "keyctl")) return syscall(SYS_keyctl, 0 /*GET_KEYRING_ID*/, -3, 0);
  if (!strcmp(name, "add_key")) return syscall(SYS_add_key, "user", "k", "v", 1, -3);
  if (!strcmp(name, "request_key")) return syscall(SYS_request_key, "user", "k", 0, -3);
  if (!strcmp(name, "userfaultfd")) return syscall(SYS_userfaultfd, 0);
  if (!strcmp(name, "io_uring_setup")) return syscall(SYS_io_uring_setup, 1, buf);
  if (!strcmp(name, "io_uring_enter")) return syscall(SYS_io_uring_enter, 0, 0, 0, 0, 0, 0);
  if (!strcmp(name, "io_uring_register")) return syscall(SYS_io_uring_register, 0, 0, 0, 0);
  if (!strcmp(name, "kexec_load")) return syscall(SYS_kexec_load, 0, 0, 0, 0);
  if (!strcmp(name, "kexec_file_load")) return syscall(SYS_kexec_file_load, -1, -1, 0, "", 0);
  if (!strcmp(name, "init_module")) return syscall(SYS_init_module, buf, 0, "");
  if (!strcmp(name, "finit_module")) return syscall(SYS_finit_module, -1, "", 0);
  if (!strcmp(name, "delete_module")) return syscall(SYS_delete_module, "ext4", 0);
  if (!strcmp(name, "open_by_handle_at")) return syscall(SYS_open_by_handle_at, AT_FDCWD, buf, 0);
  if (!strcmp(name, "name_to_handle_at")) {
    int mount_id;
    return syscall(SYS_name_to_handle_at, AT_FDCWD, "/", buf, &mount_id, 0);
  }
  if (!strcmp(name, "fanotify_init")) return syscall(SYS_fanotify_init, 0, 0);
  if (!strcmp(name, "syslog")) return syscall(SYS_syslog, 3 /*READ_ALL*/, buf, sizeof(buf));
  if (!strcmp(name, "acct")) return syscall(SYS_acct, "/tmp/acct");
  if (!strcmp(name, "swapon")) return syscall(SYS_swapon, "/tmp/swap", 0);
  if (!strcmp(name, "swapoff")) return syscall(SYS_swapoff, "/tmp/swap");
  if (!strcmp(name, "reboot")) return syscall(SYS_reboot, 0xfee1dead, 672274793, 0x4321fedc, 0);
  if (!strcmp(name, "settimeofday")) {
    struct timeval tv = {0, 0};
    return syscall(SYS_settimeofday, &tv, 0);
  }
  if (!strcmp(name, "personality")) return syscall(SYS_personality, 0x0020000 /*UNAME26*/ | 0x0040000);
  if (!strcmp(name, "fsopen")) return syscall(SYS_fsopen, "tmpfs", 0);
  if (!strcmp(name, "fsconfig")) return syscall(SYS_fsconfig, -1, 0, 0, 0, 0);
  if (!strcmp(name, "fsmount")) return syscall(SYS_fsmount, -1, 0, 0);
  if (!strcmp(name, "fspick")) return syscall(SYS_fspick, AT_FDCWD, "/tmp", 0);
  if (!strcmp(name, "move_mount")) return syscall(SYS_move_mount, -1, "", AT_FDCWD, "/tmp", 0);
  if (!strcmp(name, "open_tree")) return syscall(SYS_open_tree, AT_FDCWD, "/tmp", 1 /*CLONE*/);
  if (!strcmp(name, "mount_setattr")) return syscall(SYS_mount_setattr, AT_FDCWD, "/tmp", 0, buf, 32);
  if (!strcmp(name, "pidfd_getfd")) return syscall(SYS_pidfd_getfd, -1, 0, 0);
  if (!strcmp(name, "kcmp")) return syscall(SYS_kcmp, 1, getpid(), 0, 0, 0);
  if (!strcmp(name, "clock_settime")) {
    struct timespec ts = {0, 0};
    return syscall(SYS_clock_settime, CLOCK_REALTIME, &ts);
  }
  if (!strcmp(name, "clock_adjtime")) return syscall(SYS_clock_adjtime, CLOCK_REALTIME, buf);
  if (!strcmp(name, "adjtimex")) return syscall(SYS_adjtimex, buf);
  if (!strcmp(name, "sethostname")) return syscall(SYS_sethostname, "evil", 4);
  if (!strcmp(name, "setdomainname")) return syscall(SYS_setdomainname, "evil", 4);
  if (!strcmp(name, "quotactl")) return syscall(SYS_quotactl, 0, "/dev/vda", 0, buf);
  if (!strcmp(name, "iopl")) return syscall(SYS_iopl, 3);
  if (!strcmp(name, "ioperm")) return syscall(SYS_ioperm, 0x80, 1, 1);
  if (!strcmp(name, "vhangup")) return syscall(SYS_vhangup);
  if (!strcmp(name, "uselib")) return syscall(SYS_uselib, "/job/hostile");
  if (!strcmp(name, "lookup_dcookie")) return syscall(SYS_lookup_dcookie, 0, buf, sizeof(buf));
  if (!strcmp(name, "TIOCSTI")) return syscall(SYS_ioctl, 0, TIOCSTI, "x");
  if (!strcmp(name, "TIOCSTI-high-bits")) return syscall(SYS_ioctl, 0, 0x100000000UL | TIOCSTI, "x");
  if (!strcmp(name, "TIOCLINUX")) return syscall(SYS_ioctl, 0, TIOCLINUX, buf);
  errno = ENOSYS;
  return -2;
}

static int fork_bomb(void) {
  int forked = 0, err = 0;
  for (int i = 0; i < 100000; ++i) {
    pid_t p = fork();
    if (p == 0) {
      pause();
      _exit(0);
    }
    if (p < 0) {
      err = errno;
      break;
    }
    ++forked;
  }
  printf("forked %d\n", forked);
  return report("fork", err ? -1 : 0, err);
}

static int memory_hog(void) {
  for (size_t total = 0;; total += 16 << 20) {
    char* p = malloc(16 << 20);
    if (!p) return report("malloc", -1, ENOMEM);
    memset(p, 0x5a, 16 << 20);
  }
}

static int fill_tmpfs(void) {
  int fd = open("/tmp/fill", O_WRONLY | O_CREAT | O_TRUNC, 0600);
  if (fd < 0) return report("open", -1, errno);
  static char block[1 << 16];
  memset(block, 1, sizeof(block));
  for (;;) {
    ssize_t n = write(fd, block, sizeof(block));
    if (n < 0) return report("write /tmp", -1, errno);
  }
}

static int daemonize(const char* marker) {
  pid_t p = fork();
  if (p == 0) {
    setsid();
    if (fork() == 0) {
      char* argv[] = {"cordon-hostile", "sleep", (char*)marker, NULL};
      execv("/proc/self/exe", argv);
      _exit(1);
    }
    _exit(0);
  }
  waitpid(p, NULL, 0);
  printf("daemon started\n");
  return 0;
}

static int whoami(void) {
  printf("uid=%d euid=%d gid=%d egid=%d\n", getuid(), geteuid(), getgid(), getegid());
  return geteuid() == 0;
}

static int status_line(void) {
  FILE* f = fopen("/proc/self/status", "r");
  char line[256];
  while (f && fgets(line, sizeof(line), f)) {
    if (!strncmp(line, "Cap", 3) || !strncmp(line, "NoNewPrivs", 10) || !strncmp(line, "Seccomp:", 8) ||
        !strncmp(line, "Groups", 6) || !strncmp(line, "Uid", 3) || !strncmp(line, "Gid", 3)) {
      fputs(line, stdout);
    }
  }
  struct rlimit rl;
  getrlimit(RLIMIT_CORE, &rl);
  mode_t old = umask(0);
  printf("core=%llu umask=%03o cwd=%s\n", (unsigned long long)rl.rlim_cur, old, getcwd(line, sizeof(line)));
  return 0;
}

static int list_dir(const char* path) {
  DIR* d = opendir(path);
  if (!d) return report(path, -1, errno);
  struct dirent* e;
  while ((e = readdir(d))) printf("%s\n", e->d_name);
  closedir(d);
  return 0;
}

static int cat(const char* path) {
  FILE* f = fopen(path, "r");
  if (!f) return report(path, -1, errno);
  char line[512];
  while (fgets(line, sizeof(line), f)) fputs(line, stdout);
  fclose(f);
  return 0;
}

static int refuse_outside(const char* action) {
  struct utsname u;
  uname(&u);
  if (strncmp(u.nodename, "cordon", 6) != 0 || getuid() == 0 || getpid() == 1) {
    fprintf(stderr, "cordon-hostile: refusing to run outside the Cordon sandbox\n");
    return 1;
  }
  /* The setuid test copy: if setuid ever took effect, only report it, never act on it. */
  if (geteuid() == 0 && strcmp(action, "whoami") != 0) {
    fprintf(stderr, "cordon-hostile: euid 0, refusing anything but whoami\n");
    return 1;
  }
  return 0;
}

int main(int argc, char** argv) {
  if (argc < 2 || refuse_outside(argv[1])) return 3;
  setvbuf(stdout, NULL, _IONBF, 0);
  const char* a = argv[1];
  const char* arg = argc > 2 ? argv[2] : "";
  if (!strcmp(a, "tcp")) return net(AF_INET, SOCK_STREAM, atoi(arg));
  if (!strcmp(a, "udp")) return net(AF_INET, SOCK_DGRAM, atoi(arg));
  if (!strcmp(a, "egress")) return egress();
  if (!strcmp(a, "tcp6")) return allowed_socket("tcp6", AF_INET6, SOCK_STREAM, 0);
  if (!strcmp(a, "netlink-route")) return allowed_socket("netlink-route", AF_NETLINK, SOCK_RAW, NETLINK_ROUTE);
  if (!strcmp(a, "unix")) return allowed_socket("unix", AF_UNIX, SOCK_STREAM, 0);
  if (!strcmp(a, "raw")) TRY("socket", socket(AF_INET, SOCK_RAW, IPPROTO_RAW));
  if (!strcmp(a, "raw6")) TRY("socket", socket(AF_INET6, SOCK_RAW, IPPROTO_ICMPV6));
  if (!strcmp(a, "packet")) TRY("socket", socket(AF_PACKET, SOCK_RAW, 0));
  if (!strcmp(a, "sctp")) TRY("socket", socket(AF_INET, SOCK_STREAM, IPPROTO_SCTP));
  if (!strcmp(a, "seqpacket")) TRY("socket", socket(AF_INET, SOCK_SEQPACKET, 0));
  if (!strcmp(a, "netlink")) TRY("socket", socket(AF_NETLINK, SOCK_RAW, NETLINK_SOCK_DIAG));
  if (!strcmp(a, "vsock")) TRY("socket", socket(AF_VSOCK, SOCK_STREAM, 0));
  if (!strcmp(a, "read")) return open_path(arg, O_RDONLY);
  if (!strcmp(a, "write")) return open_path(arg, O_WRONLY);
  if (!strcmp(a, "create")) return open_path(arg, O_WRONLY | O_CREAT);
  if (!strcmp(a, "mknod")) TRY("mknod", mknod("/tmp/sda", S_IFBLK | 0600, makedev(8, 0)));
  if (!strcmp(a, "fds")) return inherited_fds();
  if (!strcmp(a, "syscall")) TRY(arg, denied(arg));
  if (!strcmp(a, "forkbomb")) return fork_bomb();
  if (!strcmp(a, "memhog")) return memory_hog();
  if (!strcmp(a, "filltmp")) return fill_tmpfs();
  if (!strcmp(a, "sleep")) return sleep(3600), 0;
  if (!strcmp(a, "daemon")) return daemonize(arg);
  if (!strcmp(a, "whoami")) return whoami();
  if (!strcmp(a, "status")) return status_line();
  if (!strcmp(a, "ls")) return list_dir(arg);
  if (!strcmp(a, "cat")) return cat(arg);
  if (!strcmp(a, "env")) {
    extern char** environ;
    for (char** e = environ; *e; ++e) printf("%s\n", *e);
    return 0;
  }
  if (!strcmp(a, "x32")) TRY("x32 getpid", syscall(0x40000000 | SYS_getpid));
  if (!strcmp(a, "int80")) {
    long rc;
    __asm__ volatile("int $0x80" : "=a"(rc) : "a"(20L) : "memory");
    return report("int80 getpid", rc, errno);
  }
  if (!strcmp(a, "spin")) { /* burn CPU for argv[2] ms of wall-clock time */
    struct timespec start, now;
    clock_gettime(CLOCK_MONOTONIC, &start);
    do {
      clock_gettime(CLOCK_MONOTONIC, &now);
    } while ((now.tv_sec - start.tv_sec) * 1000 + (now.tv_nsec - start.tv_nsec) / 1000000 < atoi(arg));
    return 0;
  }
  if (!strcmp(a, "kill-init")) TRY("kill 1", kill(1, SIGKILL));
  if (!strcmp(a, "child-syscall")) { /* a grandchild tries; the same filter and listener apply */
    pid_t p = fork();
    if (p == 0) {
      if (fork() == 0) {
        long rc = denied(arg);
        _exit(report(arg, rc, errno));
      }
      wait(NULL);
      _exit(0);
    }
    waitpid(p, NULL, 0);
    return 0;
  }
  if (!strcmp(a, "exit")) return atoi(arg);
  if (!strcmp(a, "kill-self")) return raise(atoi(arg)), 0;
  fprintf(stderr, "cordon-hostile: unknown action %s\n", a);
  return 2;
}
