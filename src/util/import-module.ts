/**
 * import() for what lies outside the CLI bundle: packages loaded on demand (jiti, chokidar,
 * dist/vendor/) and the user's config file. The bin runs the bundle through vm.Script with V8's
 * code cache (src/cli.cts), and there Node 20 cannot serve import() itself: functions from the
 * cache have lost its callback (ERR_VM_DYNAMIC_IMPORT_CALLBACK_MISSING), and the option that
 * provides one is experimental and warns. So the bin hands in its own import() (useImporter);
 * everywhere else (the SDK, an unbundled build) this is plain import().
 */
type Importer = (specifier: string) => Promise<unknown>;

let importer: Importer = (specifier) => import(specifier);

export function useImporter(f: Importer): void {
  importer = f;
}

/** import(specifier); bare specifiers resolve from the package, as any import in it would. */
export const importModule = <T>(specifier: string): Promise<T> => importer(specifier) as Promise<T>;
