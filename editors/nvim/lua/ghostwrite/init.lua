--- ghostwrite: inline text completion from a tiny GPT trained on your own writing.
---
--- The plugin only wires Neovim's built-in LSP client to `ghostwrite serve`: ghost text through
--- `vim.lsp.inline_completion` on Neovim 0.12+, popup items through `vim.lsp.completion` on 0.11.
--- Every server setting keeps its default in the server; this file passes on what the user sets.

local M = {}

local NAME = 'ghostwrite'

---@class ghostwrite.Options
---@field cmd string[] How to start the language server (stdio).
---@field filetypes string[] Filetypes that attach automatically; :GhostwriteToggle adds others.
---@field root_markers string[] Files that mark a workspace (else the current directory).
---@field settings table<string, any> Server settings (camelCase), see |ghostwrite-settings|.
---@field inline boolean On Neovim 0.12+, show ghost text instead of popup items.
---@field accept_key string|false Insert-mode key that accepts the ghost text (0.12+).
M.defaults = {
  cmd = { 'ghostwrite', 'serve' },
  filetypes = { 'text', 'markdown', 'gitcommit', 'mail' },
  root_markers = { '.git' },
  settings = {},
  inline = true,
  accept_key = '<Tab>',
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

---@param client vim.lsp.Client
---@param bufnr integer
local function on_attach(client, bufnr)
  local inline = vim.lsp.inline_completion
  if
    M.options.inline
    and inline
    and client:supports_method('textDocument/inlineCompletion', bufnr)
  then
    inline.enable(true, { bufnr = bufnr })
    local key = M.options.accept_key
    if key then
      vim.keymap.set('i', key, function()
        if not inline.get() then
          return key
        end
      end, { buffer = bufnr, expr = true, desc = 'ghostwrite: accept the suggestion' })
    end
  elseif client:supports_method('textDocument/completion', bufnr) then
    local provider = client.server_capabilities.completionProvider
    provider.triggerCharacters = every_printable_char()
    -- Without noselect the first suggestion would be inserted while the user keeps typing.
    vim.bo[bufnr].completeopt = 'menuone,noselect,popup'
    vim.lsp.completion.enable(true, client.id, bufnr, {
      autotrigger = true,
      convert = whole_suggestion,
    })
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
        .. ' buffer, or :GhostwriteToggle)',
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
function M.status()
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

--- Turns suggestions off in this buffer when on, and on (for any filetype) when off.
---@param bufnr? integer
function M.toggle(bufnr)
  bufnr = vim._resolve_bufnr(bufnr)
  local client = vim.lsp.get_clients({ name = NAME, bufnr = bufnr })[1]
  if client then
    vim.b[bufnr].ghostwrite_disabled = true
    vim.lsp.buf_detach_client(bufnr, client.id)
    notify('off in this buffer')
    return
  end
  vim.b[bufnr].ghostwrite_disabled = false
  local config = vim.deepcopy(vim.lsp.config[NAME])
  config.root_dir = root_for(bufnr)
  vim.lsp.start(config, { bufnr = bufnr })
  notify('on in this buffer')
end

--- The training progress for a statusline ('' when idle).
---@return string
function M.progress()
  return progress_message
end

---@param opts? ghostwrite.Options
function M.setup(opts)
  M.options = vim.tbl_deep_extend('force', vim.deepcopy(M.defaults), opts or {})
  -- Lists replace rather than merge, so users can shrink them.
  for _, key in ipairs({ 'cmd', 'filetypes', 'root_markers' }) do
    if opts and opts[key] then
      M.options[key] = opts[key]
    end
  end

  -- An empty Lua table would go out as a JSON array; the server expects an object.
  local settings = next(M.options.settings) and M.options.settings or vim.empty_dict()
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
  })
  vim.lsp.enable(NAME)

  local group = vim.api.nvim_create_augroup(NAME, { clear = true })
  vim.api.nvim_create_autocmd('LspAttach', {
    group = group,
    callback = function(args)
      local client = vim.lsp.get_client_by_id(args.data.client_id)
      if client and client.name == NAME then
        on_attach(client, args.buf)
      end
    end,
  })
  vim.api.nvim_create_autocmd('LspDetach', {
    group = group,
    callback = function(args)
      local client = vim.lsp.get_client_by_id(args.data.client_id)
      if client and client.name == NAME then
        vim.lsp.completion.enable(false, client.id, args.buf)
      end
    end,
  })
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
  command('GhostwriteStatus', M.status, { desc = 'ghostwrite: show the server status' })
  command('GhostwriteTrain', function(args)
    M.train(args.args)
  end, { nargs = '?', complete = 'file', desc = 'ghostwrite: train on this workspace' })
  command('GhostwriteReload', M.reload, { desc = 'ghostwrite: reload the model' })
  command('GhostwriteToggle', function()
    M.toggle()
  end, { desc = 'ghostwrite: suggestions on/off in this buffer' })
end

return M
