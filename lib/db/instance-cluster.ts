/** How Jobmon finds a task instance's cluster: task_resources → queue → cluster → cluster_type. */
import type { Knex } from 'knex';

/** `task_instance as ti` joined to its cluster (`c`) and cluster type (`ct`); either may be missing. */
export function instancesWithCluster(db: Knex): Knex.QueryBuilder {
  return db('task_instance as ti')
    .leftJoin('task_resources as tr', 'tr.id', 'ti.task_resources_id')
    .leftJoin('queue as q', 'q.id', 'tr.queue_id')
    .leftJoin('cluster as c', 'c.id', 'q.cluster_id')
    .leftJoin('cluster_type as ct', 'ct.id', 'c.cluster_type_id');
}
