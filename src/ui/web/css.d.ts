/** The page's stylesheets are bundled by esbuild (scripts/bundle.mjs). */
declare module '*.css';
