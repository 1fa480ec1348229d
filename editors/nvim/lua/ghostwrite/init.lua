--- ghostwrite: inline text completion from a tiny GPT trained on your own writing.
---
--- The plugin wires Neovim's built-in LSP client to `ghostwrite serve` and shows its suggestions
--- as ghost text it draws itself (ghost.lua), as popup items (`vim.lsp.completion`), or through
--- 0.12's `vim.lsp.inline_completion`. Every server setting keeps its default in the server; this
--- file passes on what the user sets.

local ghost = require('ghostwrite.ghost')

local M = {}

local NAME = 'ghostwrite'

---@class ghostwrite.Keys
---@field accept string|false Accept the whole suggestion.
---@field accept_word string|false Accept its next word.
---@field accept_line string|false Accept the rest of its line.
---@field next string|false Show the next candidate.
---@field prev string|false Show the previous candidate.
---@field dismiss string|false Hide the suggestion.
---@field trigger string|false Ask for a suggestion now.

---@class ghostwrite.Options
---@field cmd string[] How to start the language server (stdio).
---@field filetypes string[] Filetypes that attach automatically; `:Ghostwrite enable buffer` adds others.
---@field root_markers string[] Files that mark a workspace (else the current directory).
---@field settings table<string, any> Server settings (camelCase), see |ghostwrite-settings|.
---@field mode 'ghost'|'popup'|'builtin' How suggestions appear, see |ghostwrite-mode|.
---@field auto_trigger boolean Ask for ghost text as you type (else only with keys.trigger).
---@field hide_during_completion boolean No ghost text while the popup menu is visible.
---@field keys ghostwrite.Keys Insert-mode keys for the ghost text, see |ghostwrite-keys|.
M.defaults = {
  cmd = { 'ghostwrite', 'serve' },
  filetypes = { 'text', 'markdown', 'gitcommit', 'mail' },
  root_markers = { '.git' },
  settings = {},
  mode = 'ghost',
  auto_trigger = true,
  hide_during_completion = true,
  keys = {
    accept = '<Tab>',
    accept_word = '<M-Right>',
    accept_line = '<M-Down>',
    next = '<M-]>',
    prev = '<M-[>',
    dismiss = '<C-]>',
    trigger = '<M-\\>',
  },
}

---@type ghostwrite.Options
M.options = vim.deepcopy(M.defaults)

--- The latest training progress, for statuslines: see |ghostwrite.progress()|.
local progress_message = ''

local function notify(message, level)
  vim.notify('ghostwrite: ' .. message, level or vim.log.levels.INFO)
end

---@param bufnr integer
---@return string|nil
local function root_for(bufnr)
  if vim.b[bufnr].ghostwrite_disabled then
    return nil
  end
  return vim.fs.root(bufnr, M.options.root_markers) or vim.fn.getcwd()
end

---@param bufnr? integer
---@return vim.lsp.Client|nil
local function client_for(bufnr)
  return vim.lsp.get_clients({ name = NAME, bufnr = bufnr })[1]
    or vim.lsp.get_clients({ name = NAME })[1]
end

--- Printable ASCII: prose has no natural trigger characters, so every keystroke asks.
local function every_printable_char()
  local chars = {}
  for code = 32, 126 do
    chars[#chars + 1] = string.char(code)
  end
  return chars
end

--- Neovim 0.11 shows only the first word of a textEdit in the popup; a suggestion is a phrase.
---@param item lsp.CompletionItem
local function whole_suggestion(item)
  local text = item.textEdit and item.textEdit.newText or item.insertText or item.label
  return { word = vim.split(text, '\n', { plain = true })[1] }
end

--- Whether suggestions are on (|:Ghostwrite| without `buffer`).
local enabled = true

---@param client vim.lsp.Client
---@param bufnr integer
---@param on boolean
local function popup(client, bufnr, on)
  if not on then
    vim.lsp.completion.enable(false, client.id, bufnr)
    return
  end
  local provider = client.server_capabilities.completionProvider
  if not provider then
    return
  end
  provider.triggerCharacters = every_printable_char()
  -- Without noselect the first suggestion would be inserted while the user keeps typing.
  vim.bo[bufnr].completeopt = 'menuone,noselect,popup'
  vim.lsp.completion.enable(true, client.id, bufnr, {
    autotrigger = true,
    convert = whole_suggestion,
  })
end

--- Neovim 0.12's own ghost text, with the accept key falling back to what it did before.
---@param bufnr integer
---@param on boolean
local function builtin(bufnr, on)
  local inline = vim.lsp.inline_completion
  inline.enable(on, { bufnr = bufnr })
  local key = M.options.keys.accept
  if on and key then
    vim.keymap.set('i', key, function()
      if not inline.get() then
        return key
      end
    end, { buffer = bufnr, expr = true, desc = 'ghostwrite: accept the suggestion' })
  end
end

--- The mode in force: `builtin` needs Neovim 0.12's vim.lsp.inline_completion.
---@return 'ghost'|'popup'|'builtin'
local function mode()
  if M.options.mode == 'builtin' and not vim.lsp.inline_completion then
    return 'ghost'
  end
  return M.options.mode
end

--- Starts (`attached`) or stops the buffer's suggestions in the current mode.
---@param client vim.lsp.Client
---@param bufnr integer
---@param attached boolean
local function set_attached(client, bufnr, attached)
  local current = mode()
  if current == 'popup' then
    popup(client, bufnr, attached and enabled)
  elseif current == 'builtin' then
    builtin(bufnr, attached and enabled)
  elseif attached then
    ghost.attach(client, bufnr)
  else
    ghost.detach(bufnr)
  end
end

---@param value table
local function show_progress(value)
  if value.kind == 'end' then
    progress_message = ''
    vim.api.nvim_echo({ { 'ghostwrite: ' .. (value.message or 'done') } }, true, {})
    return
  end
  local parts = { value.title or 'ghostwrite' }
  if value.message then
    parts[#parts + 1] = value.message
  end
  if value.percentage then
    parts[#parts + 1] = ('(%d%%)'):format(value.percentage)
  end
  progress_message = table.concat(parts, ' ')
  vim.api.nvim_echo({ { progress_message } }, false, {})
  vim.cmd.redrawstatus()
end

--- Runs a server command on the ghostwrite client, reporting a missing server or an error.
---@param command string
---@param arguments any[]|nil
---@param on_result fun(result: any)
local function execute(command, arguments, on_result)
  local client = client_for(vim.api.nvim_get_current_buf())
  if not client then
    notify(
      'the server is not running here (open a ' .. table.concat(M.options.filetypes, '/')
        .. ' buffer, or :Ghostwrite enable buffer)',
      vim.log.levels.ERROR
    )
    return
  end
  local request = { title = command, command = command, arguments = arguments }
  client:exec_cmd(request, {}, function(err, result)
    if err then
      notify(command .. ' failed: ' .. err.message, vim.log.levels.ERROR)
    else
      on_result(result)
    end
  end)
end

---@param value any
---@return string
local function render(value)
  if type(value) == 'table' then
    return vim.json.encode(value)
  end
  return tostring(value)
end

--- Shows the server's status object (model, settings, training) as `key: value` lines.
function M.show_status()
  execute('ghostwrite.status', nil, function(result)
    local lines = { 'ghostwrite status' }
    if type(result) == 'table' then
      local keys = vim.tbl_keys(result)
      table.sort(keys)
      for _, key in ipairs(keys) do
        lines[#lines + 1] = ('  %s: %s'):format(key, render(result[key]))
      end
    else
      lines[#lines + 1] = '  ' .. render(result)
    end
    vim.api.nvim_echo({ { table.concat(lines, '\n') } }, true, {})
  end)
end

--- Trains (or fine-tunes) the model in the background; the progress is echoed as it comes.
---@param path string|nil Folder or file to train on (default: the workspace folders).
function M.train(path)
  local arguments = nil
  if path and path ~= '' then
    arguments = { { paths = { vim.fn.fnamemodify(path, ':p') } } }
  end
  execute('ghostwrite.train', arguments, function(result)
    if type(result) == 'table' and result.started then
      notify('training started')
    else
      local reason = type(result) == 'table' and result.message or 'training did not start'
      notify(reason, vim.log.levels.WARN)
    end
  end)
end

--- Reloads the model from disk (after training from the command line, say).
function M.reload()
  execute('ghostwrite.reload', nil, function()
    notify('model reloaded')
  end)
end

--- Turns suggestions on or off in one buffer: off detaches the server from it, on attaches it
--- whatever the buffer's filetype.
---@param on boolean
---@param bufnr? integer
local function enable_buffer(on, bufnr)
  bufnr = vim._resolve_bufnr(bufnr)
  local client = vim.lsp.get_clients({ name = NAME, bufnr = bufnr })[1]
  vim.b[bufnr].ghostwrite_disabled = not on
  if not on and client then
    vim.lsp.buf_detach_client(bufnr, client.id)
  elseif on and not client then
    local config = vim.deepcopy(vim.lsp.config[NAME])
    config.root_dir = root_for(bufnr)
    vim.lsp.start(config, { bufnr = bufnr })
  end
end

--- Turns suggestions on or off everywhere (the server stays attached), or in one buffer.
---@param on boolean
---@param bufnr? integer A buffer (0: the current one) to change only that buffer.
function M.enable(on, bufnr)
  if bufnr then
    enable_buffer(on, bufnr)
    return
  end
  enabled = on
  ghost.enable(on)
  local current = mode()
  if current ~= 'ghost' then
    for _, client in ipairs(vim.lsp.get_clients({ name = NAME })) do
      for attached in pairs(client.attached_buffers) do
        if current == 'popup' then
          popup(client, attached, on)
        else
          builtin(attached, on)
        end
      end
    end
  end
  vim.cmd.redrawstatus()
end

---@param bufnr? integer
---@return boolean
function M.is_enabled(bufnr)
  if bufnr then
    return vim.lsp.get_clients({ name = NAME, bufnr = vim._resolve_bufnr(bufnr) })[1] ~= nil
  end
  return enabled
end

--- Flips |ghostwrite.enable()|: everywhere, or in one buffer.
---@param bufnr? integer
function M.toggle(bufnr)
  M.enable(not M.is_enabled(bufnr), bufnr)
end

--- The training progress for a statusline ('' when idle).
---@return string
function M.progress()
  return progress_message
end

--- A short status for a statusline: the training progress while it runs; '' where the server
--- is not attached; else `ghostwrite`, with `off`, `…` (asking) or the candidate shown (`1/3`).
---@return string
function M.status()
  if progress_message ~= '' then
    return progress_message
  end
  local bufnr = vim.api.nvim_get_current_buf()
  if not vim.lsp.get_clients({ name = NAME, bufnr = bufnr })[1] then
    return ''
  end
  if not enabled then
    return 'ghostwrite off'
  end
  local state = ghost.state(bufnr)
  return (state and state ~= '') and ('ghostwrite ' .. state) or 'ghostwrite'
end

local SUBCOMMANDS = { 'enable', 'disable', 'toggle' }

---@param args string[]
local function ghostwrite_command(args)
  local action, scope = args[1], args[2]
  if not vim.tbl_contains(SUBCOMMANDS, action) or (scope and scope ~= 'buffer') or args[3] then
    notify('usage: :Ghostwrite enable|disable|toggle [buffer]', vim.log.levels.ERROR)
    return
  end
  local bufnr = scope and 0 or nil
  if action == 'toggle' then
    M.toggle(bufnr)
  else
    M.enable(action == 'enable', bufnr)
  end
  local where = bufnr and ' in this buffer' or ''
  notify((M.is_enabled(bufnr) and 'on' or 'off') .. where)
end

-- The ghost text's actions, for mappings of one's own (|ghostwrite-api|).
M.accept = ghost.accept
M.dismiss = ghost.dismiss
M.cycle = ghost.cycle
M.trigger = ghost.trigger
M.visible = ghost.visible

---@param opts? ghostwrite.Options
function M.setup(opts)
  M.options = vim.tbl_deep_extend('force', vim.deepcopy(M.defaults), opts or {})
  -- Lists replace rather than merge, so users can shrink them.
  for _, key in ipairs({ 'cmd', 'filetypes', 'root_markers' }) do
    if opts and opts[key] then
      M.options[key] = opts[key]
    end
  end

  local current = mode()
  local settings = vim.deepcopy(M.options.settings)
  if current == 'ghost' then
    -- The plugin debounces (it also cancels what is in flight); the server must not wait again.
    ghost.config = {
      debounce_ms = settings.debounceMs or 0,
      auto_trigger = M.options.auto_trigger,
      hide_during_completion = M.options.hide_during_completion,
      keys = M.options.keys,
    }
    settings.debounceMs = 0
  end
  -- An empty Lua table would go out as a JSON array; the server expects an object.
  settings = next(settings) and settings or vim.empty_dict()
  vim.lsp.config(NAME, {
    cmd = M.options.cmd,
    filetypes = M.options.filetypes,
    root_dir = function(bufnr, on_dir)
      local root = root_for(bufnr)
      if root then
        on_dir(root)
      end
    end,
    init_options = settings,
    settings = { [NAME] = settings },
    -- The server offers popup items only to clients without inline completion, so the capability
    -- decides what it sends (Neovim 0.11 announces none, 0.12 does).
    before_init = function(params)
      local text_document = params.capabilities.textDocument
      if current == 'popup' then
        text_document.inlineCompletion = nil
      else
        text_document.inlineCompletion = text_document.inlineCompletion
          or { dynamicRegistration = false }
      end
    end,
  })
  vim.lsp.enable(NAME)

  vim.api.nvim_set_hl(0, ghost.highlight, { link = 'Comment', default = true })

  local group = vim.api.nvim_create_augroup(NAME, { clear = true })
  for event, attached in pairs({ LspAttach = true, LspDetach = false }) do
    vim.api.nvim_create_autocmd(event, {
      group = group,
      callback = function(args)
        local client = vim.lsp.get_client_by_id(args.data.client_id)
        if client and client.name == NAME then
          set_attached(client, args.buf, attached)
        end
      end,
    })
  end
  vim.api.nvim_create_autocmd('LspProgress', {
    group = group,
    callback = function(args)
      local client = vim.lsp.get_client_by_id(args.data.client_id)
      if client and client.name == NAME then
        show_progress(args.data.params.value)
      end
    end,
  })

  local command = vim.api.nvim_create_user_command
  command('Ghostwrite', function(args)
    ghostwrite_command(args.fargs)
  end, {
    nargs = '+',
    complete = function(lead, line)
      local words = vim.split(line, '%s+', { trimempty = true })
      local position = #words - (lead == '' and 0 or 1)
      local choices = position == 1 and SUBCOMMANDS or position == 2 and { 'buffer' } or {}
      return vim.tbl_filter(function(choice)
        return vim.startswith(choice, lead)
      end, choices)
    end,
    desc = 'ghostwrite: suggestions on/off, everywhere or in this buffer',
  })
  command('GhostwriteStatus', M.show_status, { desc = 'ghostwrite: show the server status' })
  command('GhostwriteTrain', function(args)
    M.train(args.args)
  end, { nargs = '?', complete = 'file', desc = 'ghostwrite: train on this workspace' })
  command('GhostwriteReload', M.reload, { desc = 'ghostwrite: reload the model' })
end

return M
