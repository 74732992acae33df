/* SPDX-License-Identifier: MIT */
/*
 * powercut.h - a power cut for tests: a preload library (libpowercut.so)
 * that makes a program lose what a power cut would lose, then dies.
 *
 * A crash (kill -9) keeps the page cache: every write() reaches the disk
 * eventually, synced or not, so a program that never calls fsync passes
 * every kill -9 test. A power cut loses every write not yet synced. This
 * library sits between the program and libc (LD_PRELOAD) and, for the
 * files below one directory, records each write since that file's last
 * fsync/fdatasync (the bytes it overwrote and the bytes it wrote; a write
 * on a file opened with O_DSYNC/O_SYNC is synced when it returns; sync and
 * syncfs sync everything). On a cut it puts every file back as of its last
 * sync - all unsynced writes reverted, or, in random mode, a random subset
 * of them kept in their order, as a disk that reorders its cache would -
 * and kills the process with SIGKILL. The test then starts the program
 * again on the reverted files and checks its promises.
 *
 * Environment of the program:
 *   POWERCUT_DIR=DIR      the files below DIR are tracked (required; an
 *                         absolute path, which the program may make itself)
 *   POWERCUT_SIGNAL=N     the cut happens when the process gets signal N
 *                         (default SIGUSR2), from a thread of its own, at a
 *                         moment when no tracked write is half done
 *   POWERCUT_AT_SYNC=N    or at the Nth sync point (fsync, fdatasync, or a
 *                         write on an O_DSYNC file) of a tracked file, before
 *                         that sync takes effect
 *   POWERCUT_COUNT=fsync  count only fsync and fdatasync calls as sync
 *                         points (the cut then always loses the writes that
 *                         sync was about to make durable)
 *   POWERCUT_MODE=all|random   revert every unsynced write (default), or
 *                         keep each with probability 1/2
 *   POWERCUT_SEED=N       seed of random mode (default: the pid)
 *   POWERCUT_REPORT=FILE  one line appended at the cut: "cut files=F
 *                         reverted=R kept=K syncs=S", so that a test can
 *                         tell that something was lost
 *   POWERCUT_SYNC_DELAY_MS=N   every fsync/fdatasync of a tracked file takes
 *                         N ms longer: a slow disk, for what a program says
 *                         about slow commits (no cut needed)
 *
 * Not modelled: metadata (creating, renaming, deleting and truncating files
 * are durable at once), writes through mmap, and torn sectors inside one
 * write. The program's own fsync discipline on data is what it checks.
 */
#ifndef FY_POWERCUT_H
#define FY_POWERCUT_H

/* The library has no API: it is loaded with LD_PRELOAD. cutctl.h
 * fy_powercut_env builds the environment above. */

#endif
