/* The e2e harness. See hub_test.h. */
#include "hub_test.h"

#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <jansson.h>

hub_test_hub hub_test_current;

void hub_test_tmpdir(char out[256]) {
    const char *t = getenv("TMPDIR");
    snprintf(out, 256, "%s/hubtest.XXXXXX", t && *t ? t : "/tmp");
    if (mkdtemp(out) == NULL) cr_assert_fail("mkdtemp: %s", strerror(errno));
}

void hub_test_rmtree(const char *dir) {
    DIR *d = opendir(dir);
    if (d) {
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
            char p[1024];
            snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
            struct stat st;
            if (lstat(p, &st) == 0 && S_ISDIR(st.st_mode))
                hub_test_rmtree(p);
            else
                unlink(p);
        }
        closedir(d);
    }
    rmdir(dir);
}

static void sleep_ms(int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static void spawn(hub_test_hub *h, const char *const *extra) {
    char ready[400];
    snprintf(ready, sizeof ready, "%s/serve.json", h->dir);
    unlink(ready);
    const char *argv[64];
    int n = 0;
    argv[n++] = HUB_BIN;
    argv[n++] = "serve";
    argv[n++] = "--data";
    argv[n++] = h->dir;
    argv[n++] = "--mllp-port";
    argv[n++] = "0";
    argv[n++] = "--http-port";
    argv[n++] = "0";
    argv[n++] = "--mllp-host";
    argv[n++] = "127.0.0.1";
    argv[n++] = "--http-host";
    argv[n++] = "127.0.0.1";
    argv[n++] = "--log-format";
    argv[n++] = "json";
    for (int i = 0; extra && extra[i] && n < 62; i++) argv[n++] = extra[i];
    argv[n] = NULL;
    pid_t pid = fork();
    cr_assert(pid >= 0, "fork");
    if (pid == 0) {
        /* A failed assertion ends the test process without running
         * hub_test_stop; the hub must not outlive it. */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        int fd = open(h->log, O_WRONLY | O_CREAT | O_APPEND, 0600);
        if (fd >= 0) {
            dup2(fd, 2);
            dup2(fd, 1);
            close(fd);
        }
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    h->pid = pid;
    for (int i = 0; i < 1000; i++) {
        json_t *j = json_load_file(ready, 0, NULL);
        if (j) {
            h->mllp_port = (int)json_integer_value(json_object_get(j, "mllp_port"));
            h->http_port = (int)json_integer_value(json_object_get(j, "http_port"));
            json_decref(j);
            return;
        }
        int st;
        if (waitpid(pid, &st, WNOHANG) == pid) {
            h->pid = 0;
            cr_assert_fail("hub serve exited early (status %d); log in %s", st,
                           h->log);
        }
        sleep_ms(10);
    }
    cr_assert_fail("hub serve not ready in 10 s; log in %s", h->log);
}

void hub_test_start(hub_test_hub *h, const char *const *extra) {
    if (h->dir[0] == '\0') {
        char tmp[256];
        hub_test_tmpdir(tmp);
        snprintf(h->dir, sizeof h->dir, "%s/data", tmp);
        snprintf(h->log, sizeof h->log, "%s/hub.log", tmp);
    } else if (h->log[0] == '\0') {
        snprintf(h->log, sizeof h->log, "%s.log", h->dir);
    }
    spawn(h, extra);
}

void hub_test_restart(hub_test_hub *h, const char *const *extra) {
    spawn(h, extra);
}

int hub_test_signal_wait(hub_test_hub *h, int sig) {
    if (h->pid <= 0) return -1;
    kill(h->pid, sig);
    int st = 0;
    while (waitpid(h->pid, &st, 0) < 0 && errno == EINTR) {
    }
    h->pid = 0;
    if (WIFEXITED(st)) return WEXITSTATUS(st);
    if (WIFSIGNALED(st)) return 128 + WTERMSIG(st);
    return -1;
}

void hub_test_stop(hub_test_hub *h) {
    if (h->pid > 0) hub_test_signal_wait(h, SIGTERM);
    if (h->dir[0]) {
        /* The data dir sits inside the temporary dir with the log. */
        char parent[320];
        snprintf(parent, sizeof parent, "%s", h->dir);
        char *slash = strrchr(parent, '/');
        if (slash && strcmp(slash, "/data") == 0) {
            *slash = '\0';
            hub_test_rmtree(parent);
        } else {
            hub_test_rmtree(h->dir);
        }
    }
    memset(h, 0, sizeof *h);
}

void hub_test_up(void) { hub_test_start(&hub_test_current, NULL); }
void hub_test_down(void) { hub_test_stop(&hub_test_current); }
int hub_test_mllp_port(void) { return hub_test_current.mllp_port; }
int hub_test_http_port(void) { return hub_test_current.http_port; }

int hub_test_dial(int port) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cr_assert(fd >= 0, "socket");
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int rc = connect(fd, (struct sockaddr *)&a, sizeof a);
    cr_assert(rc == 0, "connect to port %d: %s", port, strerror(errno));
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

static int write_all(int fd, const char *p, size_t n) {
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

int hub_test_http(int port, const char *method, const char *path,
                  const char *ctype, const char *body, size_t n, hub_buf *resp,
                  hub_buf *headers) {
    char hdr[320] = "";
    if (ctype) snprintf(hdr, sizeof hdr, "Content-Type: %s\r\n", ctype);
    return hub_test_http_raw(port, method, path, hdr, body, n, resp, headers);
}

int hub_test_http_raw(int port, const char *method, const char *path,
                      const char *hdrs, const char *body, size_t n,
                      hub_buf *resp, hub_buf *headers) {
    int fd = hub_test_dial(port);
    hub_buf req;
    hub_buf_init(&req);
    hub_buf_printf(&req, "%s %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nConnection: close\r\n",
                   method, path, port);
    if (hdrs) hub_buf_append_cstr(&req, hdrs);
    if (body) hub_buf_printf(&req, "Content-Length: %zu\r\n", n);
    hub_buf_append_cstr(&req, "\r\n");
    if (body) hub_buf_append(&req, body, n);
    int wrc = write_all(fd, req.p, req.n);
    hub_buf_release(&req);
    if (wrc) {
        close(fd);
        return -1;
    }
    hub_buf in;
    hub_buf_init(&in);
    char tmp[65536];
    for (;;) {
        struct pollfd p = {fd, POLLIN, 0};
        if (poll(&p, 1, 30000) <= 0) break;
        ssize_t r = read(fd, tmp, sizeof tmp);
        if (r <= 0) break;
        hub_buf_append(&in, tmp, (size_t)r);
    }
    close(fd);
    int status = -1;
    if (in.n > 12 && sscanf(in.p, "HTTP/1.%*d %d", &status) == 1) {
        char *sep = strstr(in.p, "\r\n\r\n");
        if (sep) {
            if (headers) hub_buf_append(headers, in.p, (size_t)(sep - in.p) + 2);
            const char *b = sep + 4;
            size_t bn = in.n - (size_t)(b - in.p);
            /* Undo chunked transfer encoding if present. */
            char *te = strcasestr(in.p, "transfer-encoding: chunked");
            if (te && te < sep) {
                const char *q = b, *end = b + bn;
                while (q < end) {
                    unsigned long len = strtoul(q, NULL, 16);
                    const char *crlf = strstr(q, "\r\n");
                    if (!crlf || len == 0) break;
                    q = crlf + 2;
                    if (resp && q + len <= end) hub_buf_append(resp, q, len);
                    q += len + 2;
                }
            } else if (resp) {
                hub_buf_append(resp, b, bn);
            }
        }
    }
    hub_buf_release(&in);
    return status;
}

int hub_test_send_frame(int fd, const char *msg) {
    hub_buf b;
    hub_buf_init(&b);
    hub_buf_append(&b, "\x0b", 1);
    hub_buf_append_cstr(&b, msg);
    hub_buf_append(&b, "\x1c\r", 2);
    int rc = write_all(fd, b.p, b.n);
    hub_buf_release(&b);
    return rc;
}

int hub_test_read_frame(int fd, hub_buf *ack, int timeout_ms) {
    hub_buf in;
    hub_buf_init(&in);
    char c;
    bool started = false;
    for (;;) {
        struct pollfd p = {fd, POLLIN, 0};
        if (poll(&p, 1, timeout_ms) <= 0) break;
        ssize_t r = read(fd, &c, 1);
        if (r <= 0) break;
        if (!started) {
            if (c == 0x0b) started = true;
            continue;
        }
        if (c == 0x1c) {
            if (read(fd, &c, 1) != 1) break;
            ack->n = 0;
            hub_buf_append(ack, in.p ? in.p : "", in.n);
            hub_buf_release(&in);
            return 0;
        }
        hub_buf_append(&in, &c, 1);
    }
    hub_buf_release(&in);
    return -1;
}

const char *hub_test_ack_code(const char *ack) {
    static char code[8];
    code[0] = '\0';
    const char *m = strstr(ack, "MSA");
    if (m && m[3]) {
        char sep = m[3];
        const char *v = m + 4;
        size_t n = 0;
        while (v[n] && v[n] != sep && v[n] != '\r' && n < sizeof code - 1) n++;
        memcpy(code, v, n);
        code[n] = '\0';
    }
    return code;
}

int hub_test_run(const char *const *argv, const char *in, hub_buf *out,
                 hub_buf *err) {
    int po[2], pe[2], pi[2];
    if (pipe(po) || pipe(pe) || pipe(pi)) return -1;
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        dup2(pi[0], 0);
        dup2(po[1], 1);
        dup2(pe[1], 2);
        close(pi[1]);
        close(po[0]);
        close(pe[0]);
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    close(pi[0]);
    close(po[1]);
    close(pe[1]);
    if (in) write_all(pi[1], in, strlen(in));
    close(pi[1]);
    struct pollfd p[2] = {{po[0], POLLIN, 0}, {pe[0], POLLIN, 0}};
    int open_n = 2;
    char tmp[8192];
    while (open_n > 0) {
        if (poll(p, 2, 60000) <= 0) break;
        for (int i = 0; i < 2; i++) {
            if (p[i].fd < 0 || !(p[i].revents & (POLLIN | POLLHUP))) continue;
            ssize_t r = read(p[i].fd, tmp, sizeof tmp);
            if (r <= 0) {
                close(p[i].fd);
                p[i].fd = -1;
                open_n--;
                continue;
            }
            hub_buf *dst = i == 0 ? out : err;
            if (dst) hub_buf_append(dst, tmp, (size_t)r);
        }
    }
    for (int i = 0; i < 2; i++)
        if (p[i].fd >= 0) close(p[i].fd);
    int st;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
    }
    if (out && out->p == NULL) hub_buf_append(out, "", 0);
    if (err && err->p == NULL) hub_buf_append(err, "", 0);
    if (WIFEXITED(st)) return WEXITSTATUS(st);
    if (WIFSIGNALED(st)) return 128 + WTERMSIG(st);
    return -1;
}

char *hub_test_read_file(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    hub_buf b;
    hub_buf_init(&b);
    char tmp[65536];
    size_t r;
    while ((r = fread(tmp, 1, sizeof tmp, f)) > 0) hub_buf_append(&b, tmp, r);
    fclose(f);
    if (b.p == NULL) hub_buf_append(&b, "", 0);
    if (n) *n = b.n;
    return b.p;
}

bool hub_test_corpus(const char *rel, char out[512]) {
    snprintf(out, 512, "%s/corpus/%s", HUB_SHARED_DIR, rel);
    struct stat st;
    return stat(out, &st) == 0;
}

int hub_test_curl(const char *const *argv, hub_buf *out) {
    hub_buf err;
    hub_buf_init(out);
    hub_buf_init(&err);
    hub_test_run(argv, NULL, out, &err);
    hub_buf_release(&err);
    hub_buf_append(out, "", 1);
    out->n--;
    char *nl = strrchr(out->p, '\n');
    int st = nl ? atoi(nl + 1) : 0;
    if (nl) *nl = '\0';
    return st;
}
