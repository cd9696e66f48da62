import { spawn } from 'node:child_process';

/*
 * Opening a URL in the user's browser with the system's opener. Not finding one, or the opener
 * failing, only costs the convenience: the caller says so in one line and carries on.
 */

/** The opener program of a platform: `open` on macOS, `xdg-open` (freedesktop) elsewhere but Windows. */
export function openerFor(platform: NodeJS.Platform): { command: string; args: (url: string) => string[] } {
  if (platform === 'darwin') return { command: 'open', args: (url) => [url] };
  // explorer.exe exits with 1 even when it opened the page; this one does not.
  if (platform === 'win32')
    return { command: 'rundll32', args: (url) => ['url.dll,FileProtocolHandler', url] };
  return { command: 'xdg-open', args: (url) => [url] };
}

/**
 * Hands `url` to the opener and returns at once; `failed` is called (at most once) with why, if the
 * opener is missing or exits with an error. The opener is not waited for: some stay until the
 * browser they started exits.
 */
export function openUrl(url: string, onFailure: (why: string) => void): void {
  const opener = openerFor(process.platform);
  let told = false;
  // A failed spawn may be followed by an exit event too: one line, not two.
  const failed = (why: string) => {
    if (!told) onFailure(why);
    told = true;
  };
  let child: ReturnType<typeof spawn>;
  try {
    child = spawn(opener.command, opener.args(url), { stdio: 'ignore', detached: true });
  } catch (e) {
    failed(`${opener.command} could not be started: ${(e as Error).message}`);
    return;
  }
  child.once('error', (e: NodeJS.ErrnoException) =>
    failed(e.code === 'ENOENT' ? `${opener.command} is not installed` : `${opener.command}: ${e.message}`),
  );
  child.once('exit', (code) => {
    if (code) failed(`${opener.command} exited with code ${code}`);
  });
  child.unref();
}
