/*
 * A tunnel's byte relay in native code: two connected TCP sockets, bytes
 * carried both ways by read(2) and send(2) on the event loop's own thread,
 * with no JavaScript per chunk. JavaScript hands over the two file
 * descriptors (they are dup(2)ed here, so Node can close its sockets without
 * the peers noticing) and hears back once, when the tunnel has ended.
 *
 *   client fd ──read──▶ shared landing buffer ──send──▶ upstream fd   (and the other way)
 *                          │ partial send (EAGAIN): the rest is copied into that direction's
 *                          └ pending buffer; its source is not read until the pending bytes are out
 *
 *   start(id, clientFd, upstreamFd, idleMs, upFirst, downFirst) -> handle | errno (number: nothing
 *                  was done, the caller still owns its sockets and the first bytes)
 *   bytes(handle)  -> [up, down]   bytes read from the client, from the upstream so far
 *   close(handle)  -> [up, down]   ends it now (drain); no end callback follows
 *   setOnEnd(fn)   fn(id, up, down, reason, side, errno) once per tunnel that ended by itself:
 *                  reason 0 both directions ended, 1 an error (side 0 client, 1 upstream), 2 idle
 *
 * Half-close: end of stream from one side (read returns 0) is passed on as
 * shutdown(SHUT_WR) on the other once that direction's pending bytes are
 * out; the other direction carries on. The tunnel ends when both directions
 * have ended, on the first error (either socket, either operation), or when
 * neither direction has moved a byte for the idle time. Both descriptors are
 * closed exactly once, when it ends. An idle tunnel holds no buffer: reads
 * land in one buffer per process and are sent from it at once.
 *
 * Readiness comes from libuv (one uv_poll_t per socket, on Node's own loop),
 * so there are no threads. Node-API 8 plus libuv's header, which Node ships.
 */
#define NAPI_VERSION 8
#include <node_api.h>
#include <uv.h>

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define LANDING_BYTES (64 * 1024)

enum { REASON_ENDED = 0, REASON_ERROR = 1, REASON_IDLE = 2 };

typedef struct module_state {
  napi_env env;
  napi_ref on_end;
  napi_ref resource;
  napi_async_context async;
  char *landing;
} module_state;

struct relay;

typedef struct side {
  uv_poll_t poll;
  int fd;
  int events; /* what the poll watches now */
  struct relay *relay;
} side;

/* One direction: from side i to side 1 - i. */
typedef struct direction {
  char *pending; /* bytes read but not yet sent */
  size_t pending_len;
  size_t pending_off;
  int eof;      /* the source said end of stream */
  int shut;     /* shutdown(SHUT_WR) passed on to the destination */
  double bytes; /* read from the source */
} direction;

typedef struct relay {
  side s[2]; /* 0 client, 1 upstream */
  direction d[2]; /* 0 client → upstream, 1 upstream → client */
  uv_timer_t timer;
  uint64_t idle_ms;
  uint64_t last;
  double id;
  module_state *state;
  int ended;
  int open_handles; /* uv handles not yet closed */
  int refs;         /* the live relay, the JavaScript handle */
  int in_js_call;   /* ended from close(): no callback */
  int end_errno;    /* why it ended, when by an error */
} relay;

static void unref_relay(relay *r) {
  if (--r->refs == 0) free(r);
}

static void on_handle_closed(uv_handle_t *h) {
  relay *r = uv_handle_get_type(h) == UV_POLL ? ((side *)h->data)->relay : (relay *)h->data;
  if (--r->open_handles == 0) unref_relay(r);
}

static void call_on_end(relay *r, int reason, int which, int err) {
  module_state *st = r->state;
  napi_env env = st->env;
  if (st->on_end == NULL) return;
  napi_handle_scope scope;
  if (napi_open_handle_scope(env, &scope) != napi_ok) return;
  napi_value fn, recv, argv[6], result;
  if (napi_get_reference_value(env, st->on_end, &fn) == napi_ok && fn != NULL &&
      napi_get_reference_value(env, st->resource, &recv) == napi_ok &&
      napi_create_double(env, r->id, &argv[0]) == napi_ok && napi_create_double(env, r->d[0].bytes, &argv[1]) == napi_ok &&
      napi_create_double(env, r->d[1].bytes, &argv[2]) == napi_ok && napi_create_int32(env, reason, &argv[3]) == napi_ok &&
      napi_create_int32(env, which, &argv[4]) == napi_ok && napi_create_int32(env, err, &argv[5]) == napi_ok) {
    if (napi_make_callback(env, st->async, recv, fn, 6, argv, &result) == napi_pending_exception) {
      napi_value ex;
      napi_get_and_clear_last_exception(env, &ex);
      napi_fatal_exception(env, ex);
    }
  }
  napi_close_handle_scope(env, scope);
}

/* Ends the tunnel: descriptors closed once, handles closed, JavaScript told (unless it asked). */
static void end_relay(relay *r, int reason, int which, int err) {
  if (r->ended) return;
  r->ended = 1;
  r->end_errno = err;
  uv_timer_stop(&r->timer);
  uv_close((uv_handle_t *)&r->timer, on_handle_closed);
  for (int i = 0; i < 2; i++) {
    /* uv_close stops the poll (the fd leaves epoll) before the fd is closed. */
    uv_close((uv_handle_t *)&r->s[i].poll, on_handle_closed);
    close(r->s[i].fd);
    r->s[i].fd = -1;
    free(r->d[i].pending);
    r->d[i].pending = NULL;
  }
  if (!r->in_js_call) call_on_end(r, reason, which, err);
}

static void on_poll(uv_poll_t *h, int status, int events);

/* Watches what each socket is needed for now: reading while its direction has nothing pending, writing while the other has. */
static void update_side(relay *r, int i) {
  if (r->ended) return;
  int events = 0;
  if (!r->d[i].eof && r->d[i].pending == NULL) events |= UV_READABLE;
  if (r->d[1 - i].pending != NULL) events |= UV_WRITABLE;
  if (events == r->s[i].events) return;
  r->s[i].events = events;
  int rc = events ? uv_poll_start(&r->s[i].poll, events, on_poll) : uv_poll_stop(&r->s[i].poll);
  if (rc != 0) end_relay(r, REASON_ERROR, i, -rc);
}

static void update(relay *r) {
  update_side(r, 0);
  update_side(r, 1);
}

static void check_done(relay *r) {
  if (!r->ended && r->d[0].shut && r->d[1].shut) end_relay(r, REASON_ENDED, 0, 0);
}

/* Passes direction i's end of stream on, once its pending bytes are out. */
static void pass_eof(relay *r, int i) {
  direction *d = &r->d[i];
  if (!d->eof || d->shut || d->pending != NULL || r->ended) return;
  d->shut = 1;
  if (shutdown(r->s[1 - i].fd, SHUT_WR) != 0 && errno != ENOTCONN) {
    end_relay(r, REASON_ERROR, 1 - i, errno);
    return;
  }
  check_done(r);
}

/* Sends bytes of direction i; what the socket does not take now is kept. 0, or -1 when the tunnel ended. */
static int send_on(relay *r, int i, const char *data, size_t len) {
  int fd = r->s[1 - i].fd;
  size_t off = 0;
  while (off < len) {
    ssize_t n = send(fd, data + off, len - off, MSG_NOSIGNAL);
    if (n > 0) {
      off += (size_t)n;
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
    end_relay(r, REASON_ERROR, 1 - i, n < 0 ? errno : EPIPE);
    return -1;
  }
  r->last = uv_now(uv_handle_get_loop((uv_handle_t *)&r->timer));
  if (off == len) return 0;
  direction *d = &r->d[i];
  char *copy = malloc(len - off);
  if (copy == NULL) {
    end_relay(r, REASON_ERROR, 1 - i, ENOMEM);
    return -1;
  }
  memcpy(copy, data + off, len - off);
  d->pending = copy;
  d->pending_len = len - off;
  d->pending_off = 0;
  return 0;
}

/* The destination of direction i can take more: its pending bytes go on. */
static void flush(relay *r, int i) {
  direction *d = &r->d[i];
  if (d->pending == NULL) return;
  char *p = d->pending;
  size_t off = d->pending_off, len = d->pending_len;
  d->pending = NULL;
  if (send_on(r, i, p + off, len - off) != 0) {
    free(p);
    return;
  }
  free(p);
  pass_eof(r, i);
}

/* Reads once from side i and sends it on. The read's result: > 0 bytes, 0 end of stream, < 0 nothing (or the tunnel ended). */
static ssize_t read_from(relay *r, int i) {
  direction *d = &r->d[i];
  char *buf = r->state->landing;
  ssize_t n;
  do n = read(r->s[i].fd, buf, LANDING_BYTES);
  while (n < 0 && errno == EINTR);
  if (n > 0) {
    d->bytes += (double)n;
    send_on(r, i, buf, (size_t)n);
    return n;
  }
  if (n == 0) {
    d->eof = 1;
    pass_eof(r, i);
    return 0;
  }
  if (errno == EAGAIN || errno == EWOULDBLOCK) return -1;
  end_relay(r, REASON_ERROR, i, errno);
  return -1;
}

static void on_poll(uv_poll_t *h, int status, int events) {
  side *s = (side *)h->data;
  relay *r = s->relay;
  int i = (int)(s - r->s);
  if (r->ended) return;
  if (status < 0) {
    /* An error on the socket (a reset, say) can come after bytes the peer sent first: they are still in
       the receive queue and read(2) hands them over before the error, so they go on before the end. */
    while (!r->ended && !r->d[i].eof && r->d[i].pending == NULL && read_from(r, i) > 0) {
    }
    if (r->ended) return;
    /* libuv says EBADF for any EPOLLERR: the socket's own error says what happened (ECONNRESET, ...). */
    int err = 0;
    socklen_t len = sizeof err;
    if (getsockopt(r->s[i].fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err == 0) err = -status;
    end_relay(r, REASON_ERROR, i, err);
    return;
  }
  if (events & UV_WRITABLE) flush(r, 1 - i);
  if (!r->ended && (events & UV_READABLE) && !r->d[i].eof && r->d[i].pending == NULL) read_from(r, i);
  update(r);
}

static void on_timer(uv_timer_t *t) {
  relay *r = (relay *)t->data;
  if (r->ended) return;
  uint64_t now = uv_now(uv_handle_get_loop((uv_handle_t *)t));
  uint64_t quiet = now - r->last;
  if (quiet >= r->idle_ms) {
    end_relay(r, REASON_IDLE, 0, 0);
    return;
  }
  uv_timer_start(t, on_timer, r->idle_ms - quiet, 0);
}

/* ---- JavaScript side ---- */

static module_state *state_of(napi_env env) {
  module_state *st = NULL;
  napi_get_instance_data(env, (void **)&st);
  return st;
}

static void finalize_handle(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  unref_relay((relay *)data);
}

static napi_value number(napi_env env, double v) {
  napi_value out;
  napi_create_double(env, v, &out);
  return out;
}

static napi_value counts(napi_env env, relay *r) {
  napi_value arr;
  napi_create_array_with_length(env, 2, &arr);
  napi_set_element(env, arr, 0, number(env, r->d[0].bytes));
  napi_set_element(env, arr, 1, number(env, r->d[1].bytes));
  return arr;
}

static relay *relay_arg(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  void *data = NULL;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 1 ||
      napi_get_value_external(env, argv[0], &data) != napi_ok || data == NULL) {
    napi_throw_type_error(env, NULL, "expected a relay handle");
    return NULL;
  }
  return (relay *)data;
}

static int first_bytes(napi_env env, napi_value v, char **out, size_t *len) {
  *out = NULL;
  *len = 0;
  napi_valuetype t;
  if (napi_typeof(env, v, &t) != napi_ok) return -1;
  if (t == napi_undefined || t == napi_null) return 0;
  void *data;
  size_t n;
  if (napi_get_buffer_info(env, v, &data, &n) != napi_ok) return -1;
  if (n == 0) return 0;
  *out = malloc(n);
  if (*out == NULL) return -1;
  memcpy(*out, data, n);
  *len = n;
  return 0;
}

static napi_value js_start(napi_env env, napi_callback_info info) {
  size_t argc = 6;
  napi_value argv[6];
  double id, idle;
  int32_t cfd, ufd;
  module_state *st = state_of(env);
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 4 ||
      napi_get_value_double(env, argv[0], &id) != napi_ok || napi_get_value_int32(env, argv[1], &cfd) != napi_ok ||
      napi_get_value_int32(env, argv[2], &ufd) != napi_ok || napi_get_value_double(env, argv[3], &idle) != napi_ok ||
      cfd < 0 || ufd < 0 || !(idle >= 1) || st == NULL) {
    napi_throw_type_error(env, NULL, "start(id, clientFd, upstreamFd, idleMs, upFirst?, downFirst?): bad arguments");
    return NULL;
  }
  char *first[2] = {NULL, NULL};
  size_t first_len[2] = {0, 0};
  for (int i = 0; i < 2; i++) {
    if (argc > (size_t)(4 + i) && first_bytes(env, argv[4 + i], &first[i], &first_len[i]) != 0) {
      free(first[0]);
      napi_throw_type_error(env, NULL, "start: the first bytes must be Buffers");
      return NULL;
    }
  }
  uv_loop_t *loop;
  if (napi_get_uv_event_loop(env, &loop) != napi_ok) {
    free(first[0]);
    free(first[1]);
    napi_throw_error(env, NULL, "start: no event loop");
    return NULL;
  }
  int fds[2] = {fcntl(cfd, F_DUPFD_CLOEXEC, 0), -1};
  int err = fds[0] < 0 ? errno : 0;
  if (err == 0) {
    fds[1] = fcntl(ufd, F_DUPFD_CLOEXEC, 0);
    if (fds[1] < 0) err = errno;
  }
  relay *r = err == 0 ? calloc(1, sizeof(relay)) : NULL;
  if (r == NULL) {
    if (err == 0) err = ENOMEM;
    if (fds[0] >= 0) close(fds[0]);
    if (fds[1] >= 0) close(fds[1]);
    free(first[0]);
    free(first[1]);
    return number(env, err);
  }
  r->state = st;
  r->id = id;
  r->idle_ms = (uint64_t)idle;
  r->last = uv_now(loop);
  r->refs = 1;
  int one = 1, rc = 0;
  for (int i = 0; i < 2 && rc == 0; i++) {
    int fl = fcntl(fds[i], F_GETFL);
    if (fl >= 0 && !(fl & O_NONBLOCK)) fcntl(fds[i], F_SETFL, fl | O_NONBLOCK);
    setsockopt(fds[i], IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    r->s[i].fd = fds[i];
    r->s[i].relay = r;
    rc = uv_poll_init_socket(loop, &r->s[i].poll, fds[i]);
    if (rc == 0) {
      r->s[i].poll.data = &r->s[i];
      r->open_handles++;
    }
  }
  if (rc != 0) {
    /* The poll leaves epoll before its descriptor is closed (the number could be reused meanwhile). */
    r->ended = 1;
    int handles = r->open_handles;
    if (handles > 0) uv_close((uv_handle_t *)&r->s[0].poll, on_handle_closed);
    close(fds[0]);
    close(fds[1]);
    free(first[0]);
    free(first[1]);
    if (handles == 0) free(r);
    return number(env, -rc);
  }
  uv_timer_init(loop, &r->timer);
  r->timer.data = r;
  uv_unref((uv_handle_t *)&r->timer);
  r->open_handles++;
  /* Bytes Node had already read (the client's after the request head, the upstream's before the
     hand-over) go first: pending, sent when the destination is writable, before anything else is read. */
  for (int i = 0; i < 2; i++) {
    r->d[i].pending = first[i];
    r->d[i].pending_len = first_len[i];
  }
  napi_value handle;
  r->refs = 2;
  if (napi_create_external(env, r, finalize_handle, NULL, &handle) != napi_ok) {
    r->refs = 1;
    r->in_js_call = 1;
    end_relay(r, REASON_ERROR, 0, ENOMEM);
    return number(env, ENOMEM);
  }
  uv_timer_start(&r->timer, on_timer, r->idle_ms, 0);
  /* Nothing is read or sent here (that waits for readiness). Should watching fail, it ends now with no
     callback and the caller hears an errno, as for any start that did nothing: its sockets are intact. */
  r->in_js_call = 1;
  update(r);
  r->in_js_call = 0;
  if (r->ended) return number(env, r->end_errno != 0 ? r->end_errno : EIO);
  return handle;
}

static napi_value js_bytes(napi_env env, napi_callback_info info) {
  relay *r = relay_arg(env, info);
  return r == NULL ? NULL : counts(env, r);
}

static napi_value js_close(napi_env env, napi_callback_info info) {
  relay *r = relay_arg(env, info);
  if (r == NULL) return NULL;
  r->in_js_call = 1;
  end_relay(r, REASON_ERROR, 0, 0);
  r->in_js_call = 0;
  return counts(env, r);
}

static napi_value js_set_on_end(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  module_state *st = state_of(env);
  napi_valuetype t;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 1 || napi_typeof(env, argv[0], &t) != napi_ok ||
      t != napi_function || st == NULL) {
    napi_throw_type_error(env, NULL, "setOnEnd(fn): expected a function");
    return NULL;
  }
  if (st->on_end != NULL) napi_delete_reference(env, st->on_end);
  napi_create_reference(env, argv[0], 1, &st->on_end);
  return NULL;
}

static void free_state(napi_env env, void *data, void *hint) {
  (void)hint;
  module_state *st = (module_state *)data;
  if (st->on_end != NULL) napi_delete_reference(env, st->on_end);
  if (st->async != NULL) napi_async_destroy(env, st->async);
  if (st->resource != NULL) napi_delete_reference(env, st->resource);
  free(st->landing);
  free(st);
}

NAPI_MODULE_INIT(/* napi_env env, napi_value exports */) {
  module_state *st = calloc(1, sizeof(module_state));
  if (st == NULL) return NULL;
  st->env = env;
  st->landing = malloc(LANDING_BYTES);
  napi_value resource, name;
  if (st->landing == NULL || napi_create_object(env, &resource) != napi_ok ||
      napi_create_reference(env, resource, 1, &st->resource) != napi_ok ||
      napi_create_string_utf8(env, "TunnelRelay", NAPI_AUTO_LENGTH, &name) != napi_ok ||
      napi_async_init(env, resource, name, &st->async) != napi_ok || napi_set_instance_data(env, st, free_state, NULL) != napi_ok) {
    free(st->landing);
    free(st);
    return NULL;
  }
  const struct {
    const char *name;
    napi_callback fn;
  } fns[] = {{"start", js_start}, {"bytes", js_bytes}, {"close", js_close}, {"setOnEnd", js_set_on_end}};
  for (size_t i = 0; i < sizeof fns / sizeof fns[0]; i++) {
    napi_value fn;
    if (napi_create_function(env, fns[i].name, NAPI_AUTO_LENGTH, fns[i].fn, NULL, &fn) != napi_ok) return NULL;
    if (napi_set_named_property(env, exports, fns[i].name, fn) != napi_ok) return NULL;
  }
  return exports;
}
