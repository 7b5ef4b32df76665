import { randomUUID } from 'node:crypto'
import { open, rename, unlink, type FileHandle } from 'node:fs/promises'
import { dirname, relative } from 'node:path'
import { StoreFailedError } from '../errors.js'

// The file store's way onto the disk: every file it writes (transcripts, the temp files
// that replace an index or a record, lock files, and the folders it flushes) is opened
// through one `OpenFile`, so a wrapper can watch each write and each flush, or make them
// fail as a full disk would.

/** `fs.promises.open`'s shape: the store needs nothing else to write and flush. */
export type OpenFile = (path: string, flags: string, mode?: number) => Promise<FileHandle>

export const openFile: OpenFile = async (path, flags, mode) => await open(path, flags, mode)

/** Where the store writes, how it opens files, and whether it flushes them. */
export interface FileLayer {
  /** The store's directory: error messages name files relative to it. */
  root: string
  openFile: OpenFile
  fsync: boolean
}

/** A write or a flush that failed, as the error a caller sees: which file, and why. */
export function writeFailed (layer: FileLayer, path: string, err: unknown): InstanceType<typeof StoreFailedError> {
  return new StoreFailedError(relative(layer.root, path), (err as Error).message)
}

/**
 * Replaces `path` with `text` atomically: a temp file, then a rename. With `fsync`, also
 * durably: the temp file is flushed before the rename (else a crash can leave the name on
 * an empty file), and the folder after it (else the rename itself can be lost). A failure
 * (a full disk, say) leaves the old file as it was and no temp file behind.
 */
export async function replaceFile (layer: FileLayer, path: string, text: string): Promise<void> {
  const temp = `${path}.${process.pid}.${randomUUID().slice(0, 8)}.tmp`
  try {
    const handle = await layer.openFile(temp, 'wx', 0o600)
    try {
      await handle.writeFile(text)
      if (layer.fsync) await handle.datasync()
    } finally {
      await handle.close()
    }
    await rename(temp, path)
  } catch (err) {
    await unlink(temp).catch(() => {})
    throw writeFailed(layer, path, err)
  }
  if (layer.fsync) await syncFolder(layer, dirname(path))
}

/** Flushes a folder's entries (a file created or renamed in it). */
export async function syncFolder (layer: FileLayer, folder: string): Promise<void> {
  /* c8 ignore next: Windows cannot open a folder to flush it (tests run on Linux) */
  if (process.platform === 'win32') return
  const handle = await layer.openFile(folder, 'r')
  try {
    await handle.sync()
  } catch (err) {
    throw writeFailed(layer, folder, err)
  } finally {
    await handle.close()
  }
}
