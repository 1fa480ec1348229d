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
  type ServerOptions,
  State,
  TransportKind,
  WorkDoneProgress,
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

async function execute(command: string, args?: unknown[], workDoneToken?: string): Promise<unknown> {
  if (!client || client.state !== State.Running) {
    throw new Error('the language server is not running (see the ghostwrite output)');
  }
  return client.sendRequest(ExecuteCommandRequest.type, { command, arguments: args, workDoneToken });
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
  const c = client;
  const folders = (vscode.workspace.workspaceFolders ?? []).map((f) => f.uri.fsPath);
  if (!c || folders.length === 0) {
    fail('train', new Error('open a folder of your writing first'));
    return;
  }
  // Our own token, so the status bar follows this run (the server keeps reporting after the
  // command returns, since training runs in the background).
  const token = `ghostwrite-train-${Date.now()}`;
  const progress = c.onProgress(WorkDoneProgress.type, token, (value) => {
    training = value;
    updateStatusBar();
    if (value.kind === 'end') {
      progress.dispose();
      training = undefined;
      void vscode.window.showInformationMessage(`ghostwrite: ${value.message ?? 'training done'}`);
      void refreshModel();
    }
  });
  try {
    await execute('ghostwrite.train', folders, token);
  } catch (err) {
    progress.dispose();
    training = undefined;
    updateStatusBar();
    fail('train', err);
  }
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
    client = createClient();
    await client.start();
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
