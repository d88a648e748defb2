#!/bin/sh
# pagerd-entrypoint: the image's entry point. Derives the settings that differ per replica of a
# Kubernetes StatefulSet, then runs `pagerd "$@"` as PID 1 (SIGTERM reaches pagerd, which hands
# leadership over before it exits).
#
# With none of the variables below set it only runs pagerd: Docker and docker compose give every
# node its PAGERD_* variables directly.
#
#   NODE_ID_FROM_HOSTNAME=1   node_id = (the ordinal ending the hostname) + 1:
#                             pagerd-0 -> PAGERD_NODE_ID=1, pagerd-2 -> 3 (StatefulSet pod names).
#   ADVERTISE_SERVICE=NAME    resolve NAME (`{ordinal}` in it is replaced by the ordinal, e.g.
#                             `pagerd-peer-{ordinal}`) and advertise that address for the peer
#                             and client ports: PAGERD_ADVERTISE__PEER / PAGERD_ADVERTISE__CLIENT.
#                             pagerd wants IP addresses in the membership, and a pod's own IP
#                             changes when it is rescheduled; a per-pod Service's ClusterIP does
#                             not. Retried for ADVERTISE_WAIT_SECS (60) while DNS catches up.
#   PEER_PORT, CLIENT_PORT    the ports advertised with that address (8701, 8700).
#
# These control variables are deliberately not named PAGERD_*: pagerd reads every PAGERD_*
# variable as a config key and refuses unknown ones.
set -eu

die() {
    echo "pagerd-entrypoint: $*" >&2
    exit 64
}

ordinal=""
if [ -n "${NODE_ID_FROM_HOSTNAME:-}" ]; then
    host=${HOSTNAME:-$(hostname)}
    ordinal=${host##*-}
    case $ordinal in
        '' | *[!0-9]*) die "hostname '$host' does not end in -<ordinal> (NODE_ID_FROM_HOSTNAME is set)" ;;
    esac
    PAGERD_NODE_ID=$((ordinal + 1))
    export PAGERD_NODE_ID
fi

if [ -n "${ADVERTISE_SERVICE:-}" ]; then
    name=$(printf '%s' "$ADVERTISE_SERVICE" | sed "s/{ordinal}/${ordinal}/g")
    wait=${ADVERTISE_WAIT_SECS:-60}
    ip=""
    while :; do
        ip=$(getent ahosts "$name" 2>/dev/null | awk 'NR == 1 { print $1 }') || true
        [ -n "$ip" ] && break
        [ "$wait" -le 0 ] && die "cannot resolve ADVERTISE_SERVICE '$name'"
        sleep 2
        wait=$((wait - 2))
    done
    case $ip in
        *:*) ip="[$ip]" ;; # IPv6 literal in host:port
    esac
    PAGERD_ADVERTISE__PEER="$ip:${PEER_PORT:-8701}"
    PAGERD_ADVERTISE__CLIENT="$ip:${CLIENT_PORT:-8700}"
    export PAGERD_ADVERTISE__PEER PAGERD_ADVERTISE__CLIENT
    echo "pagerd-entrypoint: node ${PAGERD_NODE_ID:-?} advertises $ip ($name)" >&2
fi

exec pagerd "$@"
