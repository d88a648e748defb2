#!/bin/sh
# Initialise the pagerd cluster of deploy/k8s/pagerd.yaml, once, after `kubectl apply` when all
# pods run (they are not Ready until this is done). Makes every pod a voter, each under its
# per-pod Service's ClusterIP (pagerd-node-N), and asks pagerd-0 to initialise the cluster.
#
#   NAMESPACE=paging ./init-cluster.sh        # default: the current context's namespace
#
# Needs kubectl access to read Services, the ConfigMap and exec into pagerd-0. Running it again
# on an initialised cluster is refused by pagerd and changes nothing.
set -eu

ns=${NAMESPACE:-$(kubectl config view --minify -o jsonpath='{..namespace}')}
ns=${ns:-default}
k() { kubectl -n "$ns" "$@"; }

replicas=$(k get statefulset pagerd -o jsonpath='{.spec.replicas}')
config=$(k get configmap pagerd-config -o jsonpath='{.data.pagerd\.toml}')
# The region and the public URL every pod has (see the ConfigMap).
region=$(printf '%s\n' "$config" | sed -n 's/^region = "\(.*\)".*/\1/p' | head -n 1)
url=$(printf '%s\n' "$config" | sed -n 's/^http = "\(https\{0,1\}:\/\/[^"]*\)".*/\1/p' | head -n 1)

nodes=""
i=0
while [ "$i" -lt "$replicas" ]; do
    ip=$(k get service "pagerd-node-$i" -o jsonpath='{.spec.clusterIP}')
    [ -n "$ip" ] || { echo "no Service pagerd-node-$i (add one per replica)" >&2; exit 1; }
    case $ip in *:*) ip="[$ip]" ;; esac
    nodes="$nodes --node id=$((i + 1)),peer=$ip:8701,client=$ip:8700,region=$region${url:+,http=$url}"
    i=$((i + 1))
done

echo "initialising:$nodes"
# The bootstrap admin token authorises the call (auth.enabled in the ConfigMap).
# shellcheck disable=SC2086 # $nodes is a list of arguments
k exec pagerd-0 -c pagerd -- sh -c \
    'PAGERCTL_TOKEN=$(cat /run/secrets/pagerd/bootstrap_admin_token) exec pagerctl --endpoint http://127.0.0.1:8700 "$@"' \
    pagerctl cluster init $nodes
sleep 3 # an election
k exec pagerd-0 -c pagerd -- sh -c \
    'PAGERCTL_TOKEN=$(cat /run/secrets/pagerd/bootstrap_admin_token) exec pagerctl --endpoint http://127.0.0.1:8700 cluster status'
