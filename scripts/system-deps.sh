#!/usr/bin/env bash
# Debian packages some lessons and tests use beyond Python: Chromium (the Gradio demo's screenshot test), a CJK font
# (Chinese labels in plots; without it plots fall back to English names) and a colour emoji font (the demo's dish
# captions and headings in the browser; without it Chromium draws empty boxes).
# Installs them when run as root with apt-get; otherwise says what is missing and what will be skipped.
set -u
missing=()
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
fc-list 2>/dev/null | grep -qi "wqy\|noto sans cjk" || missing+=(fonts-wqy-microhei)
fc-list 2>/dev/null | grep -qi "emoji" || missing+=(fonts-noto-color-emoji)
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "== Installing Debian packages: ${missing[*]} =="
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" \
    || echo "Could not install ${missing[*]}: the screenshot test will skip and plots will use English labels."
else
  echo "Not installed: ${missing[*]} (install them with apt-get as root). Without them the Gradio screenshot"
  echo "test skips, plots use English dish names and the demo's emoji show as boxes."
fi
exit 0
