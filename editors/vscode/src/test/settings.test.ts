// Unit tests for the parts of the extension that run without VS Code (node --test).

import * as assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import {
  describeStatus,
  documentSelector,
  explicitSettings,
  isEnabled,
  LaunchError,
  type Manifest,
  modelLabel,
  PROSE_LANGUAGES,
  serverLaunch,
  serverSettingKeys,
  statusBarText,
  withEnabled,
} from '../settings';

const root = path.join(__dirname, '..', '..');
const manifest = JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8')) as Manifest & {
  contributes: {
    commands: { command: string }[];
    configuration: { properties: Record<string, { default?: unknown }> };
  };
  main: string;
};

describe('serverSettingKeys', () => {
  it('lists the server settings from package.json, not the client-only ones', () => {
    const keys = serverSettingKeys(manifest);
    assert.ok(keys.includes('maxChars'));
    assert.ok(keys.includes('debounceMs'));
    assert.ok(!keys.some((key) => key.startsWith('server')));
    assert.ok(!keys.includes('enable'), 'the on/off switch stays in the extension');
  });
});

describe('documentSelector', () => {
  it('defaults to the prose languages, as the Neovim plugin does', () => {
    const languages = manifest.contributes.configuration.properties['ghostwrite.languages'];
    assert.deepEqual(languages.default, [...PROSE_LANGUAGES]);
    assert.deepEqual(PROSE_LANGUAGES, [
      'plaintext',
      'markdown',
      'git-commit',
      'latex',
      'restructuredtext',
      'scminput',
    ]);
  });

  it('selects files and untitled documents of each language, and the commit message box', () => {
    assert.deepEqual(documentSelector(['markdown', 'scminput']), [
      { language: 'markdown', scheme: 'file' },
      { language: 'markdown', scheme: 'untitled' },
      { language: 'scminput' },
    ]);
  });

  it('selects every file for *', () => {
    assert.deepEqual(documentSelector(['markdown', '*']), [
      { scheme: 'file' },
      { scheme: 'untitled' },
    ]);
    assert.deepEqual(documentSelector([]), []);
  });
});

describe('ghostwrite.enable', () => {
  it('is on unless switched off, a language entry winning over *', () => {
    assert.equal(isEnabled(undefined, 'markdown'), true);
    assert.equal(isEnabled({ '*': true }, 'markdown'), true);
    assert.equal(isEnabled({ '*': false }, 'markdown'), false);
    assert.equal(isEnabled({ '*': false, markdown: true }, 'markdown'), true);
    assert.equal(isEnabled({ markdown: false }, 'plaintext'), true);
    assert.equal(isEnabled({ markdown: 'no' }, 'markdown'), true);
  });

  it('defaults to on in package.json', () => {
    const enable = manifest.contributes.configuration.properties['ghostwrite.enable'];
    assert.deepEqual(enable.default, { '*': true });
  });

  it('switches one language, or everywhere (dropping the languages)', () => {
    const setting = { '*': true, latex: false };
    assert.deepEqual(withEnabled(setting, 'markdown', false), {
      '*': true,
      latex: false,
      markdown: false,
    });
    assert.deepEqual(withEnabled(setting, '*', false), { '*': false });
    assert.deepEqual(withEnabled(undefined, 'latex', true), { latex: true });
    assert.equal(isEnabled(withEnabled(setting, '*', false), 'latex'), false);
    assert.deepEqual(setting, { '*': true, latex: false }, 'the old value is left alone');
  });
});

describe('explicitSettings', () => {
  it('keeps only values the user set, the most specific scope winning', () => {
    const scopes: Record<string, object> = {
      maxChars: { globalValue: 40, workspaceValue: 20 },
      stop: { globalValue: 'word', workspaceFolderValue: 'line', workspaceValue: 'phrase' },
      temperature: {},
      languages: { globalValue: null },
    };
    const settings = explicitSettings(
      ['maxChars', 'stop', 'temperature', 'languages', 'model'],
      (key) => scopes[key],
    );
    assert.deepEqual(settings, { maxChars: 20, stop: 'line' });
  });
});

describe('serverLaunch', () => {
  it('runs `ghostwrite serve` from the command path', () => {
    assert.deepEqual(serverLaunch('/opt/bin/ghostwrite', ''), {
      command: '/opt/bin/ghostwrite',
      args: ['serve'],
    });
  });

  it('prefers the Python interpreter when one is set, and expands ~', () => {
    assert.deepEqual(serverLaunch('ghostwrite', ' ~/venv/bin/python '), {
      command: path.join(os.homedir(), 'venv/bin/python'),
      args: ['-m', 'ghostwrite.server'],
    });
  });

  it('explains an empty command', () => {
    assert.throws(() => serverLaunch(' ', ''), LaunchError);
  });
});

describe('status bar', () => {
  it('names the model from the status object', () => {
    assert.equal(modelLabel({ model: '/home/me/.local/share/ghostwrite/model' }), 'model');
    assert.equal(modelLabel({ model: null, problem: 'no model' }), undefined);
    assert.equal(modelLabel({ training: null }), undefined);
    assert.equal(modelLabel(null), undefined);
  });

  it('shows training progress while it runs, then the model', () => {
    const running = statusBarText('notes', { kind: 'report', message: 'step 30/100', percentage: 30 });
    assert.equal(running, '$(sync~spin) ghostwrite: step 30/100 30%');
    assert.equal(statusBarText('notes', { kind: 'end' }), '$(pencil) ghostwrite: notes');
    assert.equal(statusBarText(undefined, undefined), '$(pencil) ghostwrite');
  });

  it('says when suggestions are off, except while training', () => {
    assert.equal(statusBarText('notes', undefined, false), '$(circle-slash) ghostwrite: off');
    const running = statusBarText('notes', { kind: 'begin', title: 'training' }, false);
    assert.equal(running, '$(sync~spin) ghostwrite: training');
  });

  it('renders the status object as lines', () => {
    assert.deepEqual(describeStatus({ model: { path: '/m' }, busy: false }), [
      'model: {"path":"/m"}',
      'busy: false',
    ]);
  });
});

describe('package.json', () => {
  it('contributes every command the extension registers', () => {
    const source = readFileSync(path.join(root, 'src', 'extension.ts'), 'utf8');
    const registered = [...source.matchAll(/registerCommand\('([^']+)'/g)].map((m) => m[1]);
    const contributed = manifest.contributes.commands.map((c) => c.command);
    assert.deepEqual([...registered].sort(), [...contributed].sort());
  });

  it('registers no completion provider of its own', () => {
    const source = readFileSync(path.join(root, 'src', 'extension.ts'), 'utf8');
    assert.ok(!/provideCompletionItem|registerCompletionItemProvider/.test(source));
  });

  it('points main at the compiled extension', () => {
    assert.equal(path.resolve(root, manifest.main), path.join(root, 'out', 'extension.js'));
  });
});
