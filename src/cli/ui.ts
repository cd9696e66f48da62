import type { CAC } from 'cac';
import { openUrl } from '../util/open-url.js';
import { errorMessage, type Failure, failure } from '../util/result.js';
import { errorLine, info, warn } from '../util/term.js';
import { action, type CommonFlags, settingsFor, withCommonOptions, writeJson } from './shared.js';

/** `taskvault ui` (the dashboard) and `taskvault metrics` (the Prometheus textfile). */
export function registerUi(cli: CAC): void {
  withCommonOptions(cli.command('ui', 'Serve the cache dashboard and /metrics on a local port'))
    .option('--port <port>', 'Port (default: the config servicePort, else 9999)')
    .option('--host <host>', 'Address to bind (default 127.0.0.1; any other needs --token)')
    .option('--token <token>', 'Require this token on every request (env TASKVAULT_UI_TOKEN)')
    .option('--open', 'Open the dashboard in the browser')
    .option('--team', "The whole team's runs from the team index (team.database), by user, host, branch")
    .example('taskvault ui --open')
    .example('taskvault ui --team')
    .example('TASKVAULT_UI_TOKEN=s3cret taskvault ui --host 0.0.0.0 --port 8080')
    .action(action(serve));
  withCommonOptions(cli.command('metrics', 'Write the Prometheus metrics to a textfile (node_exporter)'))
    .option('--textfile <path>', 'Where to write (default .taskvault/metrics/prometheus.txt)')
    .option('--stdout', 'Print the metrics instead of writing the file')
    .example('taskvault metrics')
    .example('taskvault metrics --textfile /var/lib/node_exporter/textfile/taskvault.prom')
    .action(action(metrics));
}

interface UiFlags extends CommonFlags {
  port?: unknown;
  host?: unknown;
  token?: unknown;
  open?: boolean;
  team?: boolean;
}

function portOf(v: unknown, fallback: number): number | Failure {
  if (v === undefined) return fallback;
  const s = String(v);
  if (!/^\d{1,5}$/.test(s) || Number(s) < 1 || Number(s) > 65535)
    return failure('usage', `--port must be a port number from 1 to 65535 (got ${JSON.stringify(s)})`);
  return Number(s);
}

async function serve(flags: UiFlags): Promise<number | Failure> {
  const settings = await settingsFor(flags);
  const port = portOf(flags.port, settings.config.servicePort ?? 9999);
  if (typeof port !== 'number') return port;
  if (flags.host === true || flags.token === true)
    return failure('usage', `--${flags.host === true ? 'host' : 'token'} needs a value`);
  const host = flags.host === undefined ? '127.0.0.1' : String(flags.host);
  const token = flags.token !== undefined ? String(flags.token) : process.env.TASKVAULT_UI_TOKEN || undefined;
  const { createDashboardServer, isLoopback, localRoutes } = await import('../ui/server.js');
  if (!isLoopback(host) && !token)
    return failure(
      'usage',
      `--host ${host} is not a loopback address, so the dashboard would be open to the network`,
      'pass --token <secret> (or set TASKVAULT_UI_TOKEN); every request must then carry it',
    );
  let data: { close(): Promise<void> };
  let routes: import('../ui/server.js').DashboardRoutes;
  let warm: import('../ui/data.js').DashboardData['warm'] | undefined;
  if (flags.team) {
    const team = settings.team;
    if (!team)
      return failure(
        'config',
        'ui --team: no team index is configured',
        "set team: { database: 'postgres://…' } in taskvault.config.ts or TASKVAULT_TEAM_DATABASE",
      );
    // No connection yet: a database that is down is the page's error state, not a failed start.
    const { TeamDashboardData } = await import('../ui/team-data.js');
    const teamData = new TeamDashboardData({ ...settings, team });
    data = teamData;
    routes = teamData;
  } else {
    const { DashboardData } = await import('../ui/data.js');
    const opened = DashboardData.open(settings);
    if (!opened.ok) return opened.error;
    data = opened.value;
    routes = localRoutes(opened.value);
    warm = (spans) => opened.value.warm(spans);
  }
  const server = createDashboardServer(routes, { host, port, ...(token ? { token } : {}) });
  const listening = await new Promise<true | NodeJS.ErrnoException>((resolve) => {
    server.once('error', (e: NodeJS.ErrnoException) => resolve(e));
    server.listen(port, host, () => resolve(true));
  });
  if (listening !== true) {
    await data.close();
    const why =
      listening.code === 'EADDRINUSE'
        ? `port ${port} on ${host} is already in use`
        : `cannot listen on ${host}:${port}: ${errorMessage(listening)}`;
    errorLine(
      why,
      listening.code === 'EADDRINUSE' ? 'pick another with --port, or stop what uses it' : undefined,
    );
    return 1;
  }
  const shown = host.includes(':') ? `[${host}]` : host;
  const url = `http://${shown}:${port}/${token ? '?token=<token>' : ''}`;
  info(
    flags.team
      ? `team dashboard on ${url} (from the team index); Ctrl-C stops it`
      : `dashboard on ${url} (metrics on /metrics); Ctrl-C stops it`,
  );
  if (warm) {
    // The page's first views (7 days by hour, 30 days by day), computed while the browser loads it.
    const { span } = await import('../ui/query.js');
    setImmediate(() => {
      const now = Date.now();
      warm([span(new URLSearchParams(), now), span(new URLSearchParams('range=30d'), now)]);
    });
  }
  if (flags.open)
    openUrl(`http://${shown}:${port}/${token ? `?token=${encodeURIComponent(token)}` : ''}`, (why) =>
      warn(`could not open a browser (${why}): open ${url} yourself`),
    );
  await new Promise<void>((resolve) => {
    const stop = () => server.close(() => resolve());
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });
  await data.close();
  return 0;
}

interface MetricsFlags extends CommonFlags {
  textfile?: unknown;
  stdout?: boolean;
}

async function metrics(flags: MetricsFlags): Promise<number | Failure> {
  const settings = await settingsFor(flags);
  if (flags.textfile === true) return failure('usage', '--textfile needs a path');
  const { metricsText, textfilePath, writeAtomically } = await import('../ui/textfile.js');
  const text = await metricsText(settings);
  if (!text.ok) return text.error;
  if (flags.stdout) {
    process.stdout.write(text.value);
    return 0;
  }
  const path = textfilePath(settings, flags.textfile === undefined ? undefined : String(flags.textfile));
  const written = writeAtomically(path, text.value);
  if (!written.ok) return written.error;
  if (flags.json) writeJson({ textfile: path });
  else info(`metrics written to ${path}`);
  return 0;
}
