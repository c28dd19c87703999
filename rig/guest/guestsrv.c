/*
 * guestsrv: the colo-replay rig's guest servers, one static single-threaded process.
 *
 * Deterministic on purpose (the primary and the secondary answer byte for byte the same):
 *   TCP :80  "det"  HTTP/1.0 reply whose body depends only on the request (FNV-1a of it)
 *   UDP :7   "echo" "ECHO <n> <payload>"            (n counts echo requests: same on both sides)
 *   UDP :9   "disk" writes 4 KiB to the replicated disk (/dev/vda) at n*4096, replies "DISK <n> ok off=<off>"
 * Divergent on purpose (every reply carries the guest's clock, so colo-compare sees a miscompare):
 *   TCP :81  "clk"  HTTP/1.0 reply with CLOCK_REALTIME and CLOCK_MONOTONIC in ns
 *   UDP :8   "stat" "STAT <n> tcp_det=.. tcp_clk=.. udp_det=.. rt=<ns> mono=<ns>"
 *
 * Single-threaded with poll(): both guests see the same requests in the same order and do the same thing.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static unsigned long n_tcp_det, n_tcp_clk, n_udp_det, n_udp_clk, n_udp_disk;

static int listen_on(int type, int port)
{
    int fd = socket(AF_INET, type, 0), one = 1;
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_ANY) };
    if (fd < 0) { perror("socket"); exit(1); }
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, (struct sockaddr *)&a, sizeof a) < 0) { perror("bind"); exit(1); }
    if (type == SOCK_STREAM && listen(fd, 16) < 0) { perror("listen"); exit(1); }
    return fd;
}

static uint32_t fnv1a(const char *s, size_t n)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++) { h ^= (unsigned char)s[i]; h *= 16777619u; }
    return h;
}

static unsigned long long ns(clockid_t c)
{
    struct timespec ts;
    clock_gettime(c, &ts);
    return (unsigned long long)ts.tv_sec * 1000000000ull + ts.tv_nsec;
}

static void write_all(int fd, const char *b, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, b, n);
        if (w < 0) { if (errno == EINTR) continue; return; }
        b += w; n -= (size_t)w;
    }
}

/* Read the request line (up to the first "\r\n" or "\n"; at most 2 s, in guest time). */
static size_t read_request(int fd, char *req, size_t cap)
{
    size_t n = 0;
    struct timeval tv = { .tv_sec = 2 };
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    while (n < cap - 1) {
        ssize_t r = read(fd, req + n, cap - 1 - n);
        if (r <= 0) break;
        n += (size_t)r;
        req[n] = 0;
        if (strstr(req, "\r\n\r\n") || strstr(req, "\n\n")) break;
    }
    req[n] = 0;
    char *eol = strpbrk(req, "\r\n");
    if (eol) *eol = 0;
    return strlen(req);
}

static void serve_tcp(int lfd, int clock_reply)
{
    int fd = accept(lfd, NULL, NULL);
    if (fd < 0) return;
    char req[2048], body[512], out[1024];
    size_t rn = read_request(fd, req, sizeof req);
    int bn;
    if (clock_reply) {
        n_tcp_clk++;
        bn = snprintf(body, sizeof body, "clk req=\"%s\" rt=%llu mono=%llu\n", req,
                      ns(CLOCK_REALTIME), ns(CLOCK_MONOTONIC));
    } else {
        n_tcp_det++;
        bn = snprintf(body, sizeof body, "det ok req=\"%s\" fnv=%08x\n", req, fnv1a(req, rn));
    }
    int on = snprintf(out, sizeof out,
                      "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n"
                      "Connection: close\r\n\r\n%s", bn, body);
    write_all(fd, out, (size_t)on);
    shutdown(fd, SHUT_WR);
    /* Drain until the client closes, so the close sequence is the same on both sides. */
    char junk[256];
    while (read(fd, junk, sizeof junk) > 0) {}
    close(fd);
}

static void serve_udp(int fd, int kind)
{
    char buf[1500], out[1600];
    struct sockaddr_in from;
    socklen_t fl = sizeof from;
    ssize_t r = recvfrom(fd, buf, sizeof buf - 1, 0, (struct sockaddr *)&from, &fl);
    if (r < 0) return;
    buf[r] = 0;
    while (r > 0 && (buf[r - 1] == '\n' || buf[r - 1] == '\r')) buf[--r] = 0;
    int on = 0;
    if (kind == 7) {
        n_udp_det++;
        on = snprintf(out, sizeof out, "ECHO %lu %s\n", n_udp_det, buf);
    } else if (kind == 8) {
        n_udp_clk++;
        on = snprintf(out, sizeof out, "STAT %lu tcp_det=%lu tcp_clk=%lu udp_det=%lu rt=%llu mono=%llu\n",
                      n_udp_clk, n_tcp_det, n_tcp_clk, n_udp_det, ns(CLOCK_REALTIME), ns(CLOCK_MONOTONIC));
    } else {
        n_udp_disk++;
        static char blk[4096];
        off_t off = (off_t)(n_udp_disk % 4096) * 4096;   /* wraps at 16 MiB */
        memset(blk, 0, sizeof blk);
        snprintf(blk, sizeof blk, "colo-rig disk write %lu: %s\n", n_udp_disk, buf);
        int dfd = open("/dev/vda", O_WRONLY);
        int ok = dfd >= 0 && pwrite(dfd, blk, sizeof blk, off) == (ssize_t)sizeof blk && fdatasync(dfd) == 0;
        if (dfd >= 0) close(dfd);
        on = snprintf(out, sizeof out, "DISK %lu %s off=%lld\n", n_udp_disk, ok ? "ok" : "fail", (long long)off);
    }
    sendto(fd, out, (size_t)on, 0, (struct sockaddr *)&from, fl);
}

int main(void)
{
    struct pollfd p[5] = {
        { .fd = listen_on(SOCK_STREAM, 80), .events = POLLIN },
        { .fd = listen_on(SOCK_STREAM, 81), .events = POLLIN },
        { .fd = listen_on(SOCK_DGRAM, 7), .events = POLLIN },
        { .fd = listen_on(SOCK_DGRAM, 8), .events = POLLIN },
        { .fd = listen_on(SOCK_DGRAM, 9), .events = POLLIN },
    };
    printf("guestsrv: listening tcp 80(det) 81(clock) udp 7(echo) 8(stat) 9(disk)\n");
    fflush(stdout);
    for (;;) {
        if (poll(p, 5, -1) < 0) { if (errno == EINTR) continue; perror("poll"); return 1; }
        if (p[0].revents & POLLIN) serve_tcp(p[0].fd, 0);
        if (p[1].revents & POLLIN) serve_tcp(p[1].fd, 1);
        if (p[2].revents & POLLIN) serve_udp(p[2].fd, 7);
        if (p[3].revents & POLLIN) serve_udp(p[3].fd, 8);
        if (p[4].revents & POLLIN) serve_udp(p[4].fd, 9);
    }
}
