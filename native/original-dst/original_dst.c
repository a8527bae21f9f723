/*
 * The original destination of a connection the kernel redirected (nftables
 * `redirect`, iptables REDIRECT): getsockopt SO_ORIGINAL_DST on IPv4 and
 * IP6T_SO_ORIGINAL_DST on IPv6, which netfilter's connection tracking
 * answers for the accepted socket. Node.js has no way to call getsockopt
 * with a structure result, hence this addon.
 *
 *   originalDestination(fd) -> { address: "52.94.0.10", port: 443 }
 *                            | { errno: 2 }   (ENOENT: not redirected)
 *
 * Node-API only (no V8 or libuv headers), version 8: the same binary loads
 * in every Node.js release that has Node-API 8 (18 and later).
 */
#define NAPI_VERSION 8
#include <node_api.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>

/* From <linux/netfilter_ipv4.h> and <linux/netfilter_ipv6/ip6_tables.h>, which clash with glibc's <netinet/in.h>. */
#ifndef SO_ORIGINAL_DST
#define SO_ORIGINAL_DST 80
#endif
#ifndef IP6T_SO_ORIGINAL_DST
#define IP6T_SO_ORIGINAL_DST 80
#endif

static napi_value errno_result(napi_env env, int err) {
  napi_value result, code;
  if (napi_create_object(env, &result) != napi_ok) return NULL;
  if (napi_create_int32(env, err, &code) != napi_ok) return NULL;
  if (napi_set_named_property(env, result, "errno", code) != napi_ok) return NULL;
  return result;
}

static napi_value address_result(napi_env env, const char *address, int port) {
  napi_value result, a, p;
  if (napi_create_object(env, &result) != napi_ok) return NULL;
  if (napi_create_string_utf8(env, address, NAPI_AUTO_LENGTH, &a) != napi_ok) return NULL;
  if (napi_create_int32(env, port, &p) != napi_ok) return NULL;
  if (napi_set_named_property(env, result, "address", a) != napi_ok) return NULL;
  if (napi_set_named_property(env, result, "port", p) != napi_ok) return NULL;
  return result;
}

static napi_value original_destination(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  int32_t fd = -1;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 1 ||
      napi_get_value_int32(env, argv[0], &fd) != napi_ok || fd < 0) {
    napi_throw_type_error(env, NULL, "originalDestination(fd): expected a file descriptor");
    return NULL;
  }

  /* The socket's own family decides the option; an IPv4 peer on an IPv6
     socket ("::ffff:a.b.c.d") was tracked, and is asked for, as IPv4. */
  struct sockaddr_storage local;
  socklen_t len = sizeof local;
  memset(&local, 0, sizeof local);
  if (getsockname(fd, (struct sockaddr *)&local, &len) != 0) return errno_result(env, errno);
  int v6 = local.ss_family == AF_INET6 && !IN6_IS_ADDR_V4MAPPED(&((struct sockaddr_in6 *)&local)->sin6_addr);

  char text[INET6_ADDRSTRLEN];
  if (v6) {
    struct sockaddr_in6 dst;
    memset(&dst, 0, sizeof dst);
    len = sizeof dst;
    if (getsockopt(fd, SOL_IPV6, IP6T_SO_ORIGINAL_DST, &dst, &len) != 0) return errno_result(env, errno);
    if (dst.sin6_family != AF_INET6 || inet_ntop(AF_INET6, &dst.sin6_addr, text, sizeof text) == NULL)
      return errno_result(env, EAFNOSUPPORT);
    return address_result(env, text, ntohs(dst.sin6_port));
  }
  struct sockaddr_in dst;
  memset(&dst, 0, sizeof dst);
  len = sizeof dst;
  if (getsockopt(fd, SOL_IP, SO_ORIGINAL_DST, &dst, &len) != 0) return errno_result(env, errno);
  if (dst.sin_family != AF_INET || inet_ntop(AF_INET, &dst.sin_addr, text, sizeof text) == NULL)
    return errno_result(env, EAFNOSUPPORT);
  return address_result(env, text, ntohs(dst.sin_port));
}

NAPI_MODULE_INIT(/* napi_env env, napi_value exports */) {
  napi_value fn;
  if (napi_create_function(env, "originalDestination", NAPI_AUTO_LENGTH, original_destination, NULL, &fn) != napi_ok) return NULL;
  if (napi_set_named_property(env, exports, "originalDestination", fn) != napi_ok) return NULL;
  return exports;
}
