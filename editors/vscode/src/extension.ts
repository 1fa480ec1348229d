// VS Code client for the ghostwrite language server: starts `ghostwrite serve`, mirrors the
// `ghostwrite.*` settings to it, and shows the model, training progress and an on/off switch in
// the status bar. Suggestions arrive through textDocument/inlineCompletion (ghost text), which
// vscode-languageclient registers as a built-in feature since LSP 3.18. The client announces
// inline completion, so the server registers no completion provider here and VS Code's own
// suggestions are left alone.

import * as vscode from 'vscode';
import {
  DidChangeConfigurationNotification,
  ExecuteCommandRequest,
  LanguageClient,
  type LanguageClientOptions,
  type ProgressToken,
  type ServerOptions,
  State,
  TransportKind,
  WorkDoneProgress,
  WorkDoneProgressCancelNotification,
  WorkDoneProgressCreateRequest,
} from 'vscode-languageclient/node';
import {
  describeStatus,
  documentSelector,
  ENABLE_KEY,
  explicitSettings,
  isEnabled,
  LaunchError,
  type Manifest,
  modelLabel,
  type Progress,
  PROSE_LANGUAGES,
  SECTION,
  serverLaunch,
  serverSettingKeys,
  statusBarText,
  withEnabled,
} from './settings';

let client: LanguageClient | undefined;
let statusBar: vscode.StatusBarItem;
let settingKeys: string[] = [];
let model: string | undefined;
let training: Progress | undefined;

function settings(scope?: vscode.Uri): Record<string, unknown> {
  const config = vscode.workspace.getConfiguration(SECTION, scope);
  return explicitSettings(settingKeys, (key) => config.inspect(key));
}

function enabledFor(language: string): boolean {
  return isEnabled(vscode.workspace.getConfiguration(SECTION).get(ENABLE_KEY), language);
}

function updateStatusBar(): void {
  const language = vscode.window.activeTextEditor?.document.languageId;
  statusBar.text = statusBarText(model, training, language ? enabledFor(language) : true);
  statusBar.tooltip = 'ghostwrite: turn suggestions on or off, show the status';
  statusBar.show();
}

/** The status bar's menu: suggestions on/off for this language or everywhere, the status. */
async function toggle(): Promise<void> {
  const language = vscode.window.activeTextEditor?.document.languageId;
  const config = vscode.workspace.getConfiguration(SECTION);
  const setting = config.get(ENABLE_KEY);
  const everywhere = isEnabled(setting, '*');
  type Choice = vscode.QuickPickItem & { run: () => Thenable<unknown> };
  const set = (scope: string, on: boolean) => () =>
    config.update(ENABLE_KEY, withEnabled(setting, scope, on), vscode.ConfigurationTarget.Global);
  const choices: Choice[] = [];
  if (language) {
    const on = isEnabled(setting, language);
    choices.push({ label: `${on ? 'Disable' : 'Enable'} for ${language}`, run: set(language, !on) });
  }
  choices.push(
    { label: `${everywhere ? 'Disable' : 'Enable'} everywhere`, run: set('*', !everywhere) },
    { label: 'Show status', run: showStatus },
  );
  const choice = await vscode.window.showQuickPick(choices, { title: 'ghostwrite' });
  await choice?.run();
}

function fail(action: string, err: unknown): void {
  const reason = err instanceof Error ? err.message : String(err);
  void vscode.window.showErrorMessage(`ghostwrite: ${action}: ${reason}`);
}

/** What the server's ghostwrite.train command answers. */
interface TrainResult {
  started: boolean;
  message?: string;
}

async function execute(command: string, args?: unknown[]): Promise<unknown> {
  if (!client || client.state !== State.Running) {
    throw new Error('the language server is not running (see the ghostwrite output)');
  }
  return client.sendRequest(ExecuteCommandRequest.type, { command, arguments: args });
}

async function refreshModel(): Promise<void> {
  try {
    model = modelLabel(await execute('ghostwrite.status'));
  } catch {
    model = undefined;
  }
  updateStatusBar();
}

async function showStatus(): Promise<void> {
  try {
    const lines = describeStatus(await execute('ghostwrite.status'));
    const output = client?.outputChannel;
    output?.info(['status', ...lines].join('\n  '));
    output?.show(true);
    void vscode.window.showInformationMessage(`ghostwrite: ${lines.join(' · ')}`);
  } catch (err) {
    fail('status', err);
  }
}

async function train(): Promise<void> {
  const folders = (vscode.workspace.workspaceFolders ?? []).map((f) => f.uri.fsPath);
  if (folders.length === 0) {
    fail('train', new Error('open a folder of your writing first'));
    return;
  }
  try {
    // Training runs in the server's background; its progress arrives through $/progress.
    const result = (await execute('ghostwrite.train', [{ paths: folders }])) as TrainResult;
    if (!result.started) {
      fail('train', new Error(result.message ?? 'training did not start'));
    }
  } catch (err) {
    fail('train', err);
  }
}

/**
 * Shows a server-created progress (training) as a cancellable notification, as the client's
 * default handler would, and in the status bar.
 */
function followProgress(c: LanguageClient, token: ProgressToken): void {
  void vscode.window.withProgress(
    { location: vscode.ProgressLocation.Notification, title: 'ghostwrite', cancellable: true },
    (bar, cancel) =>
      new Promise<void>((resolve) => {
        let reported = 0;
        cancel.onCancellationRequested(() => {
          void c.sendNotification(WorkDoneProgressCancelNotification.type, { token });
        });
        const subscription = c.onProgress(WorkDoneProgress.type, token, (value) => {
          training = value.kind === 'end' ? undefined : value;
          updateStatusBar();
          if (value.kind === 'end') {
            subscription.dispose();
            resolve();
            void vscode.window.showInformationMessage(`ghostwrite: ${value.message ?? 'done'}`);
            void refreshModel();
            return;
          }
          const percentage = value.percentage ?? reported;
          bar.report({ message: value.message, increment: percentage - reported });
          reported = percentage;
        });
      }),
  );
}

async function reload(): Promise<void> {
  try {
    await execute('ghostwrite.reload');
    await refreshModel();
  } catch (err) {
    fail('reload', err);
  }
}

function createClient(): LanguageClient {
  const server = vscode.workspace.getConfiguration(`${SECTION}.server`);
  const launch = serverLaunch(server.get<string>('path', ''), server.get<string>('pythonPath', ''));
  const serverOptions: ServerOptions = { ...launch, transport: TransportKind.stdio };
  const clientOptions: LanguageClientOptions = {
    documentSelector: documentSelector(
      vscode.workspace.getConfiguration(SECTION).get<string[]>('languages', [...PROSE_LANGUAGES]),
    ),
    initializationOptions: () => settings(),
    middleware: {
      provideInlineCompletionItems: (document, position, context, token, next) =>
        enabledFor(document.languageId) ? next(document, position, context, token) : undefined,
      workspace: {
        // Answer for the ghostwrite section with the user's explicit server settings only.
        configuration: async (params, token, next) => {
          const answers = await next(params, token);
          if (!Array.isArray(answers)) {
            return answers;
          }
          return params.items.map((item, i) =>
            item.section === SECTION
              ? settings(item.scopeUri ? vscode.Uri.parse(item.scopeUri) : undefined)
              : answers[i],
          );
        },
      },
    },
  };
  const created = new LanguageClient(SECTION, 'ghostwrite', serverOptions, clientOptions);
  created.registerProposedFeatures();
  created.onDidChangeState(({ newState }) => {
    if (newState === State.Running) {
      void refreshModel();
    } else {
      model = undefined;
      updateStatusBar();
    }
  });
  return created;
}

async function start(): Promise<void> {
  try {
    const created = createClient();
    client = created;
    await created.start();
    // Replaces the client's default progress handler (registered during start).
    created.onRequest(WorkDoneProgressCreateRequest.type, ({ token }) =>
      followProgress(created, token),
    );
  } catch (err) {
    const hint =
      err instanceof LaunchError
        ? ''
        : ' (install it with `pip install ghostwrite`, or set ghostwrite.server.path or ' +
          'ghostwrite.server.pythonPath)';
    fail('cannot start the language server', `${err instanceof Error ? err.message : err}${hint}`);
  }
}

async function restart(): Promise<void> {
  const old = client;
  client = undefined;
  await old?.dispose();
  await start();
}

async function onConfigurationChange(event: vscode.ConfigurationChangeEvent): Promise<void> {
  if (event.affectsConfiguration(`${SECTION}.${ENABLE_KEY}`)) {
    updateStatusBar();
  }
  // The document selector is fixed when the client starts.
  if (
    event.affectsConfiguration(`${SECTION}.server`) ||
    event.affectsConfiguration(`${SECTION}.languages`)
  ) {
    await restart();
  } else if (event.affectsConfiguration(SECTION) && client?.state === State.Running) {
    await client.sendNotification(DidChangeConfigurationNotification.type, {
      settings: { [SECTION]: settings() },
    });
  }
}

export async function activate(context: vscode.ExtensionContext): Promise<void> {
  settingKeys = serverSettingKeys(context.extension.packageJSON as Manifest);
  statusBar = vscode.window.createStatusBarItem(vscode.StatusBarAlignment.Right, 100);
  statusBar.command = 'ghostwrite.toggle';
  updateStatusBar();
  context.subscriptions.push(
    statusBar,
    vscode.commands.registerCommand('ghostwrite.toggle', toggle),
    vscode.window.onDidChangeActiveTextEditor(updateStatusBar),
    vscode.commands.registerCommand('ghostwrite.trainModel', train),
    vscode.commands.registerCommand('ghostwrite.reloadModel', reload),
    vscode.commands.registerCommand('ghostwrite.showStatus', showStatus),
    vscode.workspace.onDidChangeConfiguration(onConfigurationChange),
  );
  await start();
}

export async function deactivate(): Promise<void> {
  await client?.dispose();
}
