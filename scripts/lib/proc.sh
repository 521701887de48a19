# shellcheck shell=bash
# Process and port helpers shared by the scripts that start services
# (test-services.sh, run-dev.sh, bench/, tools/ipfs-node/ipfs-node.sh).
# Source it; it defines functions only.

# True if process $1 exists and is not a zombie (our children stay zombies
# until reaped, and kill -0 succeeds on a zombie).
alive() {
  local stat
  kill -0 "$1" 2>/dev/null || return 1
  read -r stat <"/proc/$1/stat" 2>/dev/null || return 0
  stat=${stat##*) }
  [[ "${stat%% *}" != Z ]]
}

# True if something accepts TCP connections on 127.0.0.1:$1.
port_in_use() {
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}
