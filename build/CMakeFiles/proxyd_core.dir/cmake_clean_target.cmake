file(REMOVE_RECURSE
  "libproxyd_core.a"
)
