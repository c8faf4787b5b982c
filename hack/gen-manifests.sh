#!/usr/bin/env bash
# gen-manifests.sh DIR N writes N manifests (Pods, Deployments, CronJobs, StatefulSets;
# some pinned, some not) into DIR, for timing `bulwark check` over a directory.
set -euo pipefail
dir=$1 n=$2
mkdir -p "$dir"
digest=sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
for i in $(seq 1 "$n"); do
	image="registry.example/team/app-$i:1.$i@$digest"
	[ $((i % 7)) -eq 0 ] && image="registry.example/team/app-$i:1.$i"
	case $((i % 4)) in
	0) printf 'apiVersion: v1\nkind: Pod\nmetadata:\n  name: pod-%d\nspec:\n  containers:\n    - name: app\n      image: %s\n' "$i" "$image" ;;
	1) printf 'apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: deploy-%d\nspec:\n  selector:\n    matchLabels: {app: a%d}\n  template:\n    metadata:\n      labels: {app: a%d}\n    spec:\n      containers:\n        - name: app\n          image: %s\n        - name: proxy\n          image: registry.example/team/proxy:2@%s\n' "$i" "$i" "$i" "$image" "$digest" ;;
	2) printf 'apiVersion: batch/v1\nkind: CronJob\nmetadata:\n  name: cron-%d\nspec:\n  schedule: "0 * * * *"\n  jobTemplate:\n    spec:\n      template:\n        spec:\n          restartPolicy: Never\n          containers:\n            - name: job\n              image: %s\n' "$i" "$image" ;;
	3) printf 'apiVersion: apps/v1\nkind: StatefulSet\nmetadata:\n  name: sts-%d\nspec:\n  serviceName: s\n  selector:\n    matchLabels: {app: s%d}\n  template:\n    metadata:\n      labels: {app: s%d}\n    spec:\n      containers:\n        - name: db\n          image: %s\n          securityContext:\n            readOnlyRootFilesystem: true\n' "$i" "$i" "$i" "$image" ;;
	esac >"$dir/manifest-$i.yaml"
done
