#!/usr/bin/env bash
# Install the npm packages (from package-lock.json) and copy the front-end
# files the server serves into assets/vendor/ (not committed).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
cd "$ROOT"

if [[ ! -d node_modules/swagger-ui-dist || package-lock.json -nt node_modules/.package-lock.json ]]; then
	npm ci --no-audit --no-fund --loglevel=error
fi
dst=assets/vendor/swagger-ui
rm -rf "$dst" && mkdir -p "$dst"
for f in swagger-ui-bundle.js swagger-ui.css LICENSE NOTICE; do
	cp "node_modules/swagger-ui-dist/$f" "$dst/"
done
