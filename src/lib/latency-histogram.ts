// A Prometheus histogram counted in plain arrays, for the latency every HTTP
// response records. prom-client's Histogram validates and hashes the label
// set on every observe(), even through a labels() child (885 ns a call in a
// micro-benchmark; every request paid it). This one finds its series once per
// label set and then only counts; the registry formats it on scrape through
// get(), the method it calls on every metric, in prom-client's own histogram
// layout (test/lib/latency-histogram.test.ts compares the two outputs).
import type { Metric, Registry } from 'prom-client';

/** A line of the exposition, as prom-client's registry reads it from get(). */
interface ExportedValue {
  labels: Record<string, string | number>;
  value: number;
  metricName: string;
}

export interface LatencySeries {
  observe(seconds: number): void;
}

interface Series<T extends string> extends LatencySeries {
  labels: Record<T, string>;
  /** Per bucket (the last one past the highest bound), not cumulative. */
  counts: Float64Array;
  sum: number;
  count: number;
}

export interface LatencyHistogramOptions<T extends string> {
  name: string;
  help: string;
  labelNames: readonly T[];
  /** Upper bounds in seconds, ascending. */
  buckets: readonly number[];
  registers: Registry[];
}

export class LatencyHistogram<T extends string> {
  readonly name: string;
  readonly help: string;
  readonly type = 'histogram' as const;
  readonly aggregator = 'sum' as const;
  readonly #bounds: readonly number[];
  readonly #labelNames: ReadonlySet<string>;
  readonly #series = new Map<string, Series<T>>();

  constructor(options: LatencyHistogramOptions<T>) {
    this.name = options.name;
    this.help = options.help;
    this.#bounds = [...options.buckets];
    this.#labelNames = new Set(options.labelNames);
    // The registry only calls name, help, type, aggregator, get() and reset(): a Metric for its purposes.
    for (const registry of options.registers) registry.registerMetric(this as unknown as Metric);
  }

  /** The series for one label set; `key` must identify the label values (callers keep the series). */
  series(key: string, labels: Record<T, string>): LatencySeries {
    let series = this.#series.get(key);
    if (!series) {
      // Checked once per label set (prom-client checks on every observe()).
      const names = Object.keys(labels);
      if (names.length !== this.#labelNames.size || !names.every((name) => this.#labelNames.has(name))) {
        throw new Error(`${this.name}: labels must be exactly ${[...this.#labelNames].join(', ')}`);
      }
      const bounds = this.#bounds;
      const counts = new Float64Array(bounds.length + 1);
      series = {
        labels,
        counts,
        sum: 0,
        count: 0,
        observe(seconds: number) {
          let bucket = 0;
          while (bucket < bounds.length && seconds > bounds[bucket]!) bucket++;
          counts[bucket]!++;
          this.sum += seconds;
          this.count++;
        },
      };
      this.#series.set(key, series);
    }
    return series;
  }

  /**
   * What the registry formats, in prom-client's histogram layout. (Its type
   * declarations give `type` as a numeric enum; at run time its own metrics
   * carry the string, which the registry prints after `# TYPE`.)
   */
  async get(): Promise<{
    name: string;
    help: string;
    type: 'histogram';
    values: ExportedValue[];
    aggregator: 'sum';
  }> {
    const values: ExportedValue[] = [];
    for (const series of this.#series.values()) {
      // Like prom-client, a series appears once it has been observed (since the last reset).
      if (series.count === 0) continue;
      let cumulative = 0;
      this.#bounds.forEach((bound, bucket) => {
        cumulative += series.counts[bucket]!;
        values.push({
          labels: { le: bound, ...series.labels },
          value: cumulative,
          metricName: `${this.name}_bucket`,
        });
      });
      values.push(
        { labels: { le: '+Inf', ...series.labels }, value: series.count, metricName: `${this.name}_bucket` },
        { labels: series.labels, value: series.sum, metricName: `${this.name}_sum` },
        { labels: series.labels, value: series.count, metricName: `${this.name}_count` },
      );
    }
    return { name: this.name, help: this.help, type: this.type, values, aggregator: this.aggregator };
  }

  /** Zeroes every series in place: callers keep their series, which must go on counting. */
  reset(): void {
    for (const series of this.#series.values()) {
      series.counts.fill(0);
      series.sum = 0;
      series.count = 0;
    }
  }
}
