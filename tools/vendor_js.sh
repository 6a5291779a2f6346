#!/usr/bin/env bash
# Refresh book/_static/vendor from the npm registry (MathJax and the Jupyter widgets HTML manager).
set -euo pipefail
MATHJAX=3.2.2
HTML_MANAGER=1.0.15
root="$(cd "$(dirname "$0")/.." && pwd)"
dest="$root/book/_static/vendor"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent "mathjax@$MATHJAX" "@jupyter-widgets/html-manager@$HTML_MANAGER" >/dev/null)
mkdir -p "$work/mj" "$work/hm"
tar xzf "$work/mathjax-$MATHJAX.tgz" -C "$work/mj"
tar xzf "$work/jupyter-widgets-html-manager-$HTML_MANAGER.tgz" -C "$work/hm"
rm -rf "$dest/mathjax" "$dest/html-manager"
mkdir -p "$dest/mathjax/output/chtml/fonts" "$dest/mathjax/input/tex" "$dest/html-manager"
es5="$work/mj/package/es5"
cp "$es5/tex-chtml.js" "$dest/mathjax/"
cp -r "$es5/output/chtml/fonts/woff-v2" "$dest/mathjax/output/chtml/fonts/"
cp -r "$es5/input/tex/extensions" "$dest/mathjax/input/tex/"
cp "$work/mj/package/LICENSE" "$dest/mathjax/LICENSE"
dist="$work/hm/package/dist"
cp "$dist/embed.js" "$dist/embed.js.LICENSE.txt" "$dist"/*.woff2 "$dest/html-manager/"
(cd "$dest" && sha256sum mathjax/tex-chtml.js html-manager/embed.js)
echo "updated $dest; update the versions and checksums in $dest/README.md"
