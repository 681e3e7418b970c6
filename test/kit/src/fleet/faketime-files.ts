// libfaketime's files in /dev/shm, which an agent started with it preloaded leaves behind.

/**
 * libfaketime shares its clock with the children of the program that preloads it through two files in
 * /dev/shm named by that program's pid. The first program of the exec chain makes them (nsenter or ip,
 * whose pid the agent keeps), and only the program that made them removes them when it exits: the agent
 * never does. So the fleet records them when it starts such an agent, and removes them at teardown.
 */
export function faketimeFiles(env: NodeJS.ProcessEnv, pid: number): string[] {
  if (!/libfaketime/.test(env.LD_PRELOAD ?? "")) return [];
  return [`/dev/shm/faketime_shm_${pid}`, `/dev/shm/sem.faketime_sem_${pid}`];
}
