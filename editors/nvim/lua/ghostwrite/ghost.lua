--- Ghost text drawn by the plugin from `textDocument/inlineCompletion`, on every Neovim it
--- supports: the first line of a suggestion as inline virtual text at the cursor, the others as
--- virtual lines below it.
---
--- One suggestion per buffer, anchored where it was asked for. While the user types along it,
--- what is left of it stays visible until the server answers for the new text; typing anything
--- else hides it. Requests are debounced here (the server is told not to wait) and the one in
--- flight is cancelled at each keystroke.

local M = {}

local api = vim.api

M.namespace = api.nvim_create_namespace('ghostwrite')
M.highlight = 'GhostwriteSuggestion'

-- lsp.InlineCompletionTriggerKind
local INVOKED, AUTOMATIC = 1, 2

---@class ghostwrite.ghost.Config
---@field debounce_ms integer Wait after a keystroke before asking.
---@field auto_trigger boolean Ask as the user types (else only on the trigger key).
---@field hide_during_completion boolean No ghost text while the popup menu is visible.
---@field keys table<string, string|false> Insert-mode keys, see |ghostwrite-keys|.
M.config = {
  debounce_ms = 0,
  auto_trigger = true,
  hide_during_completion = true,
  keys = {},
}

--- Suggestions are on (|:Ghostwrite| enable/disable/toggle without `buffer`).
M.enabled = true

---@class ghostwrite.ghost.Suggestion
---@field row integer 0-based line of the anchor.
---@field col integer Byte column of the anchor.
---@field before string The line's text before the anchor when it was asked for.
---@field after string The line's text after the anchor then.
---@field items string[] The candidates: text to insert at the anchor.
---@field index integer The candidate shown.

---@class ghostwrite.ghost.Buffer
---@field client_id integer
---@field suggestion? ghostwrite.ghost.Suggestion
---@field request? { client: vim.lsp.Client, id: integer }
---@field timer uv.uv_timer_t
---@field mark? integer
---@field group integer
---@field saved table<string, table> Buffer-local mappings the plugin's keys replaced.

---@type table<integer, ghostwrite.ghost.Buffer>
local buffers = {}

---@return integer row 0-based
---@return integer col bytes
local function cursor()
  local pos = api.nvim_win_get_cursor(0)
  return pos[1] - 1, pos[2]
end

--- The shown candidate minus what was typed since it was asked for; nil when the text or the
--- cursor left it, or when all of it is typed.
---@param bufnr integer
---@param s ghostwrite.ghost.Suggestion
---@return string|nil
local function remainder(bufnr, s)
  if api.nvim_get_current_buf() ~= bufnr then
    return nil
  end
  local row, col = cursor()
  if row < s.row or (row == s.row and col < s.col) then
    return nil
  end
  local lines = api.nvim_buf_get_lines(bufnr, s.row, row + 1, false)
  if #lines ~= row - s.row + 1 or lines[1]:sub(1, s.col) ~= s.before then
    return nil
  end
  if lines[#lines]:sub(col + 1) ~= s.after then
    return nil
  end
  lines[#lines] = lines[#lines]:sub(1, col)
  lines[1] = lines[1]:sub(s.col + 1)
  local typed = table.concat(lines, '\n')
  local text = s.items[s.index]
  if text:sub(1, #typed) ~= typed or #text == #typed then
    return nil
  end
  return text:sub(#typed + 1)
end

---@param bufnr integer
local function hide(bufnr)
  local state = buffers[bufnr]
  if state and state.mark then
    pcall(api.nvim_buf_del_extmark, bufnr, M.namespace, state.mark)
    state.mark = nil
  end
end

--- Draws what is left of the suggestion at the cursor (or hides it).
---@param bufnr integer
local function render(bufnr)
  local state = buffers[bufnr]
  if not state then
    return
  end
  local rest = state.suggestion and remainder(bufnr, state.suggestion)
  if not rest then
    state.suggestion = nil
  end
  if not rest or (M.config.hide_during_completion and vim.fn.pumvisible() == 1) then
    hide(bufnr)
    return
  end
  local lines = vim.split(rest, '\n', { plain = true })
  local virt_lines = {}
  for i = 2, #lines do
    virt_lines[#virt_lines + 1] = { { lines[i], M.highlight } }
  end
  local row, col = cursor()
  state.mark = api.nvim_buf_set_extmark(bufnr, M.namespace, row, col, {
    id = state.mark,
    virt_text = { { lines[1], M.highlight } },
    virt_text_pos = 'inline',
    virt_lines = #virt_lines > 0 and virt_lines or nil,
    priority = 1000,
  })
end

---@param state ghostwrite.ghost.Buffer
local function cancel(state)
  state.timer:stop()
  if state.request then
    state.request.client:cancel_request(state.request.id)
    state.request = nil
  end
end

--- The candidates' texts from an answer, relative to the cursor. An item whose range starts
--- before the cursor on its line keeps only what follows the text already there.
---@param result lsp.InlineCompletionList|lsp.InlineCompletionItem[]|nil
---@param line string
---@param row integer
---@param col integer
---@param encoding string
---@return string[]
local function texts_of(result, line, row, col, encoding)
  local items = result and (result.items or result) or {}
  local texts = {}
  for _, item in ipairs(items) do
    local text = type(item.insertText) == 'string' and item.insertText
      or (type(item.insertText) == 'table' and item.insertText.value)
    local start = item.range and item.range.start
    if text and start and start.line == row then
      local from = vim.str_byteindex(line, encoding, start.character, false)
      local typed = line:sub(from + 1, col)
      text = text:sub(1, #typed) == typed and text:sub(#typed + 1) or nil
    end
    if text and text ~= '' and not vim.tbl_contains(texts, text) then
      texts[#texts + 1] = text
    end
  end
  return texts
end

---@param bufnr integer
---@return vim.lsp.Client|nil
local function client_of(bufnr)
  local state = buffers[bufnr]
  return state and vim.lsp.get_client_by_id(state.client_id)
end

--- Asks the server at the cursor; `on_texts` gets the candidates when the answer is still for
--- the text and cursor it was asked for.
---@param bufnr integer
---@param kind integer
---@param on_texts fun(texts: string[])
local function request(bufnr, kind, on_texts)
  local state = buffers[bufnr]
  local client = client_of(bufnr)
  cancel(state)
  if not client then
    return
  end
  local row, col = cursor()
  local line = api.nvim_get_current_line()
  local tick = api.nvim_buf_get_changedtick(bufnr)
  local params = vim.lsp.util.make_position_params(0, client.offset_encoding)
  ---@cast params lsp.InlineCompletionParams
  params.context = { triggerKind = kind }
  local id
  local ok, request_id = client:request('textDocument/inlineCompletion', params, function(err, result)
    if not (state.request and state.request.id == id) then
      return -- cancelled or superseded
    end
    state.request = nil
    vim.cmd.redrawstatus()
    local now_row, now_col = cursor()
    if
      err
      or buffers[bufnr] ~= state
      or api.nvim_get_current_buf() ~= bufnr
      or api.nvim_buf_get_changedtick(bufnr) ~= tick
      or now_row ~= row
      or now_col ~= col
      or not vim.startswith(api.nvim_get_mode().mode, 'i')
    then
      return
    end
    on_texts(texts_of(result, line, row, col, client.offset_encoding))
  end, bufnr)
  if ok and request_id then
    id = request_id
    state.request = { client = client, id = id }
  end
end

---@param bufnr integer
---@param texts string[]
---@param index integer
local function offer(bufnr, texts, index)
  local row, col = cursor()
  local line = api.nvim_get_current_line()
  buffers[bufnr].suggestion = {
    row = row,
    col = col,
    before = line:sub(1, col),
    after = line:sub(col + 1),
    items = texts,
    index = index,
  }
  render(bufnr)
  vim.cmd.redrawstatus()
end

---@param bufnr integer
---@return boolean
local function active(bufnr)
  return M.enabled and buffers[bufnr] ~= nil and client_of(bufnr) ~= nil
end

--- After a keystroke: ask again once the typing pauses. An empty answer leaves a suggestion the
--- user is typing along in place.
---@param bufnr integer
local function schedule(bufnr)
  local state = buffers[bufnr]
  cancel(state)
  if not (active(bufnr) and M.config.auto_trigger) then
    return
  end
  state.timer:start(
    M.config.debounce_ms,
    0,
    vim.schedule_wrap(function()
      if buffers[bufnr] ~= state or not active(bufnr) or api.nvim_get_current_buf() ~= bufnr then
        return
      end
      if not vim.startswith(api.nvim_get_mode().mode, 'i') then
        return
      end
      request(bufnr, AUTOMATIC, function(texts)
        if #texts > 0 then
          offer(bufnr, texts, 1)
        end
      end)
    end)
  )
end

---@param bufnr? integer
---@return string|nil
function M.visible(bufnr)
  bufnr = bufnr or api.nvim_get_current_buf()
  local state = buffers[bufnr]
  return state and state.mark and state.suggestion and remainder(bufnr, state.suggestion) or nil
end

--- Drops the suggestion and stops asking until the next keystroke.
---@param bufnr? integer
---@return boolean shown whether a suggestion was shown
function M.dismiss(bufnr)
  bufnr = bufnr or api.nvim_get_current_buf()
  local state = buffers[bufnr]
  if not state then
    return false
  end
  local shown = M.visible(bufnr) ~= nil
  cancel(state)
  state.suggestion = nil
  hide(bufnr)
  return shown
end

--- The next word of a suggestion: leading blanks, then a run of letters (or of punctuation).
---@param text string
---@return string
local function next_word(text)
  return text:match("^%s*[%w\128-\255_']+") or text:match('^%s*[^%s%w\128-\255]+') or text
end

--- Inserts all of the suggestion, its next word or the rest of its line at the cursor.
---@param part? 'all'|'word'|'line'
---@param bufnr? integer
---@return boolean accepted false when no suggestion is shown
function M.accept(part, bufnr)
  bufnr = bufnr or api.nvim_get_current_buf()
  local rest = M.visible(bufnr)
  if not rest then
    return false
  end
  local text = rest
  if part == 'word' then
    text = next_word(rest)
  elseif part == 'line' then
    text = rest:match('^[^\n]*\n?')
  end
  local row, col = cursor()
  local lines = vim.split(text, '\n', { plain = true })
  api.nvim_buf_set_text(bufnr, row, col, row, col, lines)
  local last = #lines == 1 and col + #lines[1] or #lines[#lines]
  api.nvim_win_set_cursor(0, { row + #lines, last })
  render(bufnr)
  return true
end

--- Shows the next (`step` 1) or previous (-1) candidate; with only one, asks the server for
--- alternatives (an invoked request offers several).
---@param step integer
---@param bufnr? integer
---@return boolean
function M.cycle(step, bufnr)
  bufnr = bufnr or api.nvim_get_current_buf()
  if not active(bufnr) then
    return false
  end
  local state = buffers[bufnr]
  local s = state.suggestion
  if s and M.visible(bufnr) and #s.items > 1 then
    local start = s.index
    repeat
      s.index = (s.index - 1 + step) % #s.items + 1
    until remainder(bufnr, s) or s.index == start
    render(bufnr)
    vim.cmd.redrawstatus()
    return true
  end
  local shown = M.visible(bufnr) ~= nil
  request(bufnr, INVOKED, function(texts)
    if #texts > 0 then
      local index = (shown and #texts > 1) and (step > 0 and 2 or #texts) or 1
      offer(bufnr, texts, index)
    end
  end)
  return true
end

--- Asks for a suggestion now, whatever the debounce and `auto_trigger`.
---@param bufnr? integer
---@return boolean
function M.trigger(bufnr)
  bufnr = bufnr or api.nvim_get_current_buf()
  if not active(bufnr) then
    return false
  end
  request(bufnr, INVOKED, function(texts)
    if #texts > 0 then
      offer(bufnr, texts, 1)
    end
  end)
  return true
end

--- For statuslines: nil when the buffer has no ghost text, else what it is doing.
---@param bufnr? integer
---@return string|nil
function M.state(bufnr)
  bufnr = bufnr or api.nvim_get_current_buf()
  local state = buffers[bufnr]
  if not state then
    return nil
  elseif not M.enabled then
    return 'off'
  elseif state.request then
    return '…'
  elseif state.suggestion and M.visible(bufnr) then
    return ('%d/%d'):format(state.suggestion.index, #state.suggestion.items)
  end
  return ''
end

--- What the key did before the plugin mapped it: the buffer's own mapping it replaced, a global
--- mapping, or the key itself.
---@param lhs string
---@param saved table|nil
local function fallback(lhs, saved)
  local raw = vim.keycode(lhs)
  local mapping = saved
  if not mapping then
    for _, m in ipairs(api.nvim_get_keymap('i')) do
      if vim.keycode(m.lhs) == raw then
        mapping = m
        break
      end
    end
  end
  if not mapping then
    api.nvim_feedkeys(raw, 'in', false)
    return
  end
  local keys
  if mapping.callback then
    keys = mapping.callback()
    if mapping.expr ~= 1 then
      return
    end
  elseif mapping.expr == 1 then
    keys = api.nvim_eval(mapping.rhs)
  else
    keys = mapping.rhs
  end
  if type(keys) ~= 'string' or keys == '' then
    return
  end
  if mapping.expr ~= 1 or mapping.replace_keycodes == 1 then
    keys = vim.keycode(keys)
  end
  api.nvim_feedkeys(keys, mapping.noremap == 1 and 'in' or 'im', false)
end

--- Each key's action; an action that returns false lets the key fall back.
local ACTIONS = {
  accept = function()
    return M.accept('all')
  end,
  accept_word = function()
    return M.accept('word')
  end,
  accept_line = function()
    return M.accept('line')
  end,
  next = function()
    return M.cycle(1)
  end,
  prev = function()
    return M.cycle(-1)
  end,
  dismiss = function()
    return M.dismiss()
  end,
  trigger = function()
    return M.trigger()
  end,
}

---@param bufnr integer
local function map_keys(bufnr)
  local state = buffers[bufnr]
  for name, lhs in pairs(M.config.keys) do
    local action = ACTIONS[name]
    if lhs and action then
      local previous = vim.fn.maparg(lhs, 'i', false, true)
      local saved = previous.buffer == 1 and previous or nil
      state.saved[lhs] = saved
      vim.keymap.set('i', lhs, function()
        if not action() then
          fallback(lhs, saved)
        end
      end, { buffer = bufnr, desc = 'ghostwrite: ' .. name:gsub('_', ' ') })
    end
  end
end

---@param bufnr integer
local function unmap_keys(bufnr)
  local state = buffers[bufnr]
  for name, lhs in pairs(M.config.keys) do
    if lhs and ACTIONS[name] then
      pcall(vim.keymap.del, 'i', lhs, { buffer = bufnr })
      if state.saved[lhs] then
        vim.fn.mapset('i', false, state.saved[lhs])
      end
    end
  end
end

--- Starts ghost text in a buffer the client attached to.
---@param client vim.lsp.Client
---@param bufnr integer
function M.attach(client, bufnr)
  if buffers[bufnr] then
    M.detach(bufnr)
  end
  local group = api.nvim_create_augroup('ghostwrite.ghost.' .. bufnr, { clear = true })
  buffers[bufnr] = {
    client_id = client.id,
    timer = assert(vim.uv.new_timer()),
    group = group,
    saved = {},
  }
  local function on(events, callback)
    api.nvim_create_autocmd(events, { group = group, buffer = bufnr, callback = callback })
  end
  on({ 'InsertEnter', 'TextChangedI', 'TextChangedP' }, function()
    render(bufnr)
    schedule(bufnr)
  end)
  on({ 'CursorMovedI', 'CompleteChanged' }, function()
    render(bufnr)
  end)
  on('CompleteDone', function()
    vim.schedule(function()
      render(bufnr)
    end)
  end)
  on({ 'InsertLeave', 'BufLeave' }, function()
    M.dismiss(bufnr)
  end)
  map_keys(bufnr)
end

---@param bufnr integer
function M.detach(bufnr)
  local state = buffers[bufnr]
  if not state then
    return
  end
  cancel(state)
  hide(bufnr)
  unmap_keys(bufnr)
  state.timer:close()
  api.nvim_del_augroup_by_id(state.group)
  buffers[bufnr] = nil
end

--- Turns ghost text on or off in every buffer.
---@param on boolean
function M.enable(on)
  M.enabled = on
  if not on then
    for bufnr in pairs(buffers) do
      M.dismiss(bufnr)
    end
  end
end

return M
