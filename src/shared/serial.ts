/** Work run one piece at a time, in the order given; a failure does not stop the next. */
export type Serial = <T>(work: () => Promise<T>) => Promise<T>;

export function serial(): Serial {
  let queue: Promise<unknown> = Promise.resolve();
  return (work) => {
    const run = queue.then(work, work);
    queue = run.catch(() => undefined);
    return run;
  };
}
