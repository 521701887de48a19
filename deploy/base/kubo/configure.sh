#!/bin/sh
# Prepares the Kubo repository before every start of the daemon (the init
# container of StatefulSet fhir-bulk-kubo runs it, as the same non-root user as
# the daemon). Idempotent: creates the repository on the first start, then
# re-applies the settings that keep this node private, so a hand edit or an
# older repository cannot leave it reachable or talking to the public network.
#
# Private means: a swarm key (only peers holding it can connect; with
# LIBP2P_FORCE_PNET=1 the daemon refuses to start without one), no bootstrap
# peers, no AutoConf / delegated routing / DNS-over-HTTPS resolvers (all fetched
# from the public network), no content routing, no relays, NAT traversal or
# mDNS, and no HTTP gateway. The RPC API listens on the pod's address so that
# the ClusterIP Service can reach it; the NetworkPolicy fhir-bulk-kubo admits
# only the API and worker pods.
set -eu

: "${IPFS_PATH:=/data/ipfs}"
SWARM_KEY_SOURCE=${SWARM_KEY_SOURCE:-/etc/kubo/swarm/swarm.key}
STORAGE_MAX=${KUBO_STORAGE_MAX:-45GB}

if [ ! -s "$SWARM_KEY_SOURCE" ]; then
  echo "configure: no swarm key at $SWARM_KEY_SOURCE (Secret fhir-bulk-kubo-swarm)" >&2
  exit 1
fi

if [ ! -e "$IPFS_PATH/config" ]; then
  echo "configure: initialising a new repository in $IPFS_PATH"
  ipfs init --profile=server --empty-repo
fi

# Only the RPC API, on the pod's address; no gateway at all.
ipfs config Addresses.API /ip4/0.0.0.0/tcp/5001
ipfs config --json Addresses.Gateway '[]'
# Swarm over TCP only (QUIC and WebTransport do not support private networks).
ipfs config --json Addresses.Swarm '["/ip4/0.0.0.0/tcp/4001"]'

# Nothing from or to the public network.
ipfs config --json AutoConf.Enabled false
ipfs config --json Bootstrap '[]'
ipfs config --json Routing.DelegatedRouters '[]'
ipfs config --json Ipns.DelegatedPublishers '[]'
ipfs config --json DNS.Resolvers '{}'
ipfs config Routing.Type none
ipfs config --json AutoTLS.Enabled false
ipfs config AutoNAT.ServiceMode disabled
ipfs config --json Discovery.MDNS.Enabled false
ipfs config --json Swarm.DisableNatPortMap true
ipfs config --json Swarm.EnableHolePunching false
ipfs config --json Swarm.RelayClient.Enabled false
ipfs config --json Swarm.RelayService.Enabled false

# Keep the datastore below the volume size (PVC 50Gi).
ipfs config Datastore.StorageMax "$STORAGE_MAX"

# The key last: replaced on every start, so a rotated Secret takes effect and a
# stale key never lingers on the volume.
rm -f "$IPFS_PATH/swarm.key"
cp "$SWARM_KEY_SOURCE" "$IPFS_PATH/swarm.key"
chmod 0400 "$IPFS_PATH/swarm.key"

echo "configure: repository ready (private network, no gateway)"
