// Public surface of @cream/store: the model registry (immutable Hugging Face
// directories with a checksummed manifest, published atomically) and the run
// store (every stage's output committed as files with a manifest, so a run
// resumes where it stopped). Files only: no weights are parsed here.

/** The model registry: publish, import, resolve (`latest`), list, get, verify, open, remove; its manifest and record types. */
export {
  ModelRegistry,
  MANIFEST_FILE,
  type ModelManifest,
  type Recipe,
  type RecipeInput,
  type VersionRecord,
  type PublishOptions,
  type ImportOptions,
  type OpenVersionOptions,
  type RegistryOptions,
} from './registry';
/** The run store: create, open and list runs; a run's state, stages and events. */
export {
  RunStore,
  RunHandle,
  type RunRecord,
  type RunEvent,
  type EventCursor,
  type StoredStage,
  type StageContent,
  type RunPage,
  type RunStoreOptions,
} from './run-store';
/** Writing one stage aside (files and streamed JSONL) and committing it atomically; the stage manifest. */
export { StageWriter, JsonlWriter, STAGE_MANIFEST_FILE, STAGE_DATA_FILE, type StageManifest } from './stage-writer';
/** One file of a version or stage as a manifest records it (path, bytes, sha256). */
export type { FileEntry } from './files';
/** The name rules: limits, allowed characters, the `latest` alias. */
export { NAME_MAX_BYTES, STAGE_NAME_MAX_BYTES, FILE_PATH_MAX_BYTES, NAME_CHARACTERS, LATEST } from './names';
/** Typed errors (each names its version, run, stage, file or field) and their guards. */
export {
  StoreError,
  InvalidInputError,
  VersionExistsError,
  VersionNotFoundError,
  ManifestMismatchError,
  RunExistsError,
  RunNotFoundError,
  RunCorruptError,
  StageExistsError,
  StageNotFoundError,
  StageCorruptError,
  isStoreError,
  isInvalidInputError,
  isVersionExistsError,
  isVersionNotFoundError,
  isManifestMismatchError,
  isRunExistsError,
  isRunNotFoundError,
  isRunCorruptError,
  isStageExistsError,
  isStageNotFoundError,
  isStageCorruptError,
  type MismatchProblem,
} from './errors';
/** Default locations: CREAM_HOME and the registry root. */
export { creamHome, defaultRegistryRoot } from './locations';
