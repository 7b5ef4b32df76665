import { randomUUID } from 'node:crypto'
import { open, rename, type FileHandle } from 'node:fs/promises'
import { dirname } from 'node:path'

// The file store's way onto the disk: every file whose writes it flushes (transcripts,
// the temp files that replace an index or a record, and their folders) is opened
// through one `OpenFile`, so a wrapper can watch each write and each flush.

/** `fs.promises.open`'s shape: the store needs nothing else to write and flush. */
export type OpenFile = (path: string, flags: string, mode?: number) => Promise<FileHandle>

export const openFile: OpenFile = async (path, flags, mode) => await open(path, flags, mode)

/**
 * Replaces `path` with `text` atomically: a temp file, then a rename. With `fsync`, also
 * durably: the temp file is flushed before the rename (else a crash can leave the name on
 * an empty file), and the folder after it (else the rename itself can be lost).
 */
export async function replaceFile (openFile: OpenFile, path: string, text: string, fsync: boolean): Promise<void> {
  const temp = `${path}.${process.pid}.${randomUUID().slice(0, 8)}.tmp`
  const handle = await openFile(temp, 'wx', 0o600)
  try {
    await handle.writeFile(text)
    if (fsync) await handle.datasync()
  } finally {
    await handle.close()
  }
  await rename(temp, path)
  if (fsync) await syncFolder(openFile, dirname(path))
}

/** Flushes a folder's entries (a file created or renamed in it). */
async function syncFolder (openFile: OpenFile, folder: string): Promise<void> {
  /* c8 ignore next: Windows cannot open a folder to flush it (tests run on Linux) */
  if (process.platform === 'win32') return
  const handle = await openFile(folder, 'r')
  try {
    await handle.sync()
  } finally {
    await handle.close()
  }
}
