// The extension's logic that needs no VS Code API, kept apart so node's test runner can check it.

import * as os from 'node:os';
import * as path from 'node:path';

/** The configuration section shared by the extension and the language server. */
export const SECTION = 'ghostwrite';

/** Settings under `ghostwrite.server.*` start the server; they are not sent to it. */
const CLIENT_PREFIX = `${SECTION}.server.`;

/** `ghostwrite.enable` switches suggestions in the extension; the server never sees it. */
export const ENABLE_KEY = 'enable';

/** The languages the extension completes in when `ghostwrite.languages` is not set: prose. */
export const PROSE_LANGUAGES: readonly string[] = [
  'plaintext',
  'markdown',
  'git-commit',
  'latex',
  'restructuredtext',
  'scminput',
];

/** The part of `package.json` this module reads. */
export interface Manifest {
  contributes: { configuration: { properties: Record<string, unknown> } };
}

/** What `WorkspaceConfiguration.inspect` reports for one key (the scopes the user can set). */
export interface Inspected {
  globalValue?: unknown;
  workspaceValue?: unknown;
  workspaceFolderValue?: unknown;
}

/**
 * The server's setting names (camelCase, without the section). `package.json` is the one list;
 * the server owns their defaults.
 */
export function serverSettingKeys(manifest: Manifest): string[] {
  return Object.keys(manifest.contributes.configuration.properties)
    .filter((key) => key.startsWith(`${SECTION}.`) && !key.startsWith(CLIENT_PREFIX))
    .map((key) => key.slice(SECTION.length + 1))
    .filter((key) => key !== ENABLE_KEY);
}

/** A document filter, as the LSP's `TextDocumentFilter` has it (a language, a scheme or both). */
export type DocumentFilter = { language: string; scheme?: string } | { scheme: string };

/**
 * The documents the language client syncs and asks about: files and untitled documents of the
 * `ghostwrite.languages` languages (any file for `*`), and the source control message box.
 */
export function documentSelector(languages: readonly string[]): DocumentFilter[] {
  const schemes = ['file', 'untitled'];
  if (languages.includes('*')) {
    return schemes.map((scheme) => ({ scheme }));
  }
  return languages.flatMap((language) =>
    // The commit message box is not a file: its documents have a scheme of their own.
    language === 'scminput' ? [{ language }] : schemes.map((scheme) => ({ language, scheme })),
  );
}

/**
 * Whether suggestions are on for a language under `ghostwrite.enable`, an object of language ids
 * (and `*` for the others) to booleans; the language's own entry wins.
 */
export function isEnabled(setting: unknown, language: string): boolean {
  if (typeof setting !== 'object' || setting === null) {
    return true;
  }
  const entries = setting as Record<string, unknown>;
  const value = entries[language] ?? entries['*'];
  return typeof value === 'boolean' ? value : true;
}

/**
 * `ghostwrite.enable` after switching suggestions on or off for one language, or (for `*`)
 * everywhere, which drops the languages' own entries.
 */
export function withEnabled(
  setting: unknown,
  language: string,
  on: boolean,
): Record<string, boolean> {
  if (language === '*') {
    return { '*': on };
  }
  const entries: Record<string, boolean> = {};
  if (typeof setting === 'object' && setting !== null) {
    for (const [key, value] of Object.entries(setting)) {
      if (typeof value === 'boolean') {
        entries[key] = value;
      }
    }
  }
  entries[language] = on;
  return entries;
}

/**
 * The server settings the user set, the most specific scope winning. Unset keys are left out so
 * that the server's defaults apply.
 */
export function explicitSettings(
  keys: readonly string[],
  inspect: (key: string) => Inspected | undefined,
): Record<string, unknown> {
  const settings: Record<string, unknown> = {};
  for (const key of keys) {
    const scopes = inspect(key);
    const value = scopes?.workspaceFolderValue ?? scopes?.workspaceValue ?? scopes?.globalValue;
    if (value !== undefined && value !== null) {
      settings[key] = value;
    }
  }
  return settings;
}

/** How to run the server: `ghostwrite serve`, or `python -m ghostwrite.server` when set. */
export interface Launch {
  command: string;
  args: string[];
}

export class LaunchError extends Error {}

function expandHome(file: string): string {
  return file === '~' || file.startsWith('~/') ? path.join(os.homedir(), file.slice(1)) : file;
}

export function serverLaunch(commandPath: string, pythonPath: string): Launch {
  if (pythonPath.trim() !== '') {
    return { command: expandHome(pythonPath.trim()), args: ['-m', 'ghostwrite.server'] };
  }
  if (commandPath.trim() === '') {
    throw new LaunchError(
      'set ghostwrite.server.path (the ghostwrite command) or ghostwrite.server.pythonPath',
    );
  }
  return { command: expandHome(commandPath.trim()), args: ['serve'] };
}

/** A `$/progress` value (begin, report or end). */
export interface Progress {
  kind: 'begin' | 'report' | 'end';
  title?: string;
  message?: string;
  percentage?: number;
}

/** The model's short name for the status bar, from the server's status object. */
export function modelLabel(status: unknown): string | undefined {
  const model = (status as { model?: unknown } | null)?.model;
  return typeof model === 'string' && model !== '' ? path.basename(model) : undefined;
}

/**
 * Status bar text: the training progress while it runs, else whether suggestions are off for the
 * current editor, else the model in use.
 */
export function statusBarText(
  model: string | undefined,
  training: Progress | undefined,
  enabled = true,
): string {
  if (training && training.kind !== 'end') {
    const detail = training.message ?? training.title ?? 'training';
    const percent = training.percentage === undefined ? '' : ` ${Math.round(training.percentage)}%`;
    return `$(sync~spin) ghostwrite: ${detail}${percent}`;
  }
  if (!enabled) {
    return '$(circle-slash) ghostwrite: off';
  }
  return `$(pencil) ghostwrite${model ? `: ${model}` : ''}`;
}

/** The status object as `key: value` lines, nested values as JSON. */
export function describeStatus(status: unknown): string[] {
  if (typeof status !== 'object' || status === null) {
    return [String(status)];
  }
  return Object.entries(status as Record<string, unknown>).map(
    ([key, value]) => `${key}: ${typeof value === 'object' ? JSON.stringify(value) : String(value)}`,
  );
}
