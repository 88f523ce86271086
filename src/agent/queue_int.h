/*
 * queue_int.h — the test hook of queue.c; never included by the agent.
 *
 * queue.c calls mt_dq__step_hook (when set) right after each system call
 * that changes the disk or that the crash-safety argument of
 * docs/device-agent.md counts on: mkdir, open of a temporary file, each
 * write, fsync, close, rename, unlink and directory fsync.  `what` names
 * the step ("write", "fsync", "rename", "dirfsync", ...).
 * tests/unit/test_devqueue.c sets it in a forked child to call _exit()
 * after the N-th step, which is how the power-cut sweep (threat FI19)
 * stops the queue and the counter at every write step.  NULL, the only
 * value the agent ever sees, costs one comparison per step.
 */
#ifndef MT_AGENT_QUEUE_INT_H
#define MT_AGENT_QUEUE_INT_H

extern void (*mt_dq__step_hook)(const char *what);

#endif
