#!/usr/bin/env bash
# Render a report.html in headless Chromium (Debian's package: apt-get install chromium)
# and save a screenshot: scripts/screenshot_report.sh results/report.html shot.png
set -euo pipefail
html=$(realpath "${1:?usage: screenshot_report.sh REPORT.html OUT.png}")
out=${2:-report.png}
chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
    --disable-background-networking --disable-component-update --disable-sync --hide-scrollbars \
    --user-data-dir="$(mktemp -d)" --window-size=1200,2600 --screenshot="$out" "file://$html" 2>/dev/null
echo "$out"
