{
  "targets": [
    {
      "target_name": "tunnel_relay",
      "sources": ["tunnel_relay.c"],
      "cflags": ["-Wall", "-Wextra", "-O2"],
      "conditions": [["OS != 'linux'", { "type": "none", "sources!": ["tunnel_relay.c"] }]]
    }
  ]
}
