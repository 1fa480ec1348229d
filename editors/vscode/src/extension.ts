// VS Code client for the ghostwrite language server: starts `ghostwrite serve`, mirrors the
// `ghostwrite.*` settings to it, and shows the model and training progress in the status bar.
// Suggestions arrive through textDocument/inlineCompletion (ghost text), which
// vscode-languageclient registers as a built-in feature since LSP 3.18.

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
  explicitSettings,
  LaunchError,
  type Manifest,
  modelLabel,
  type Progress,
  SECTION,
  serverLaunch,
  serverSettingKeys,
  statusBarText,
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

function updateStatusBar(): void {
  statusBar.text = statusBarText(model, training);
  statusBar.tooltip = 'ghostwrite: show the server status';
  statusBar.show();
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
    // The server decides where it completes (its `languages` and `filePatterns` settings).
    documentSelector: [{ scheme: 'file' }, { scheme: 'untitled' }],
    initializationOptions: () => settings(),
    middleware: {
      // VS Code shows suggestions as ghost text; the server's popup items are for editors
      // without inline completion, and would only duplicate them here.
      provideCompletionItem: () => undefined,
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
  if (event.affectsConfiguration(`${SECTION}.server`)) {
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
  statusBar.command = 'ghostwrite.showStatus';
  updateStatusBar();
  context.subscriptions.push(
    statusBar,
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
