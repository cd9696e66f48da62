/**
 * A random suffix for temp file names. It need not be secret: every temp file is created
 * exclusively (O_EXCL: 'wx', COPYFILE_EXCL), so a name someone guessed and planted first (a
 * symlink, say) only makes that creation fail; it can never redirect it. Math.random spares
 * loading node:crypto on a hit (~1.5 ms of start-up).
 */
export const tempSuffix = (): string =>
  Math.floor(Math.random() * 0x100000000)
    .toString(16)
    .padStart(8, '0');
