package dev.camundasandbox.engine;

import org.springframework.boot.SpringApplication;
import org.springframework.boot.autoconfigure.SpringBootApplication;

/**
 * Local Camunda 7 engine with its REST API at /engine-rest, for the
 * camunda-sandbox demo, tests and benchmarks. Everything else is configured
 * in application.yaml.
 */
@SpringBootApplication
public class EngineApplication {

  public static void main(String[] args) {
    // On a stock JDK (not GraalVM) GraalJS runs interpreted and prints a
    // multi-line warning the first time a script runs; it is expected here.
    // Set before Spring starts so it is in place before any polyglot engine.
    System.setProperty("polyglot.engine.WarnInterpreterOnly", "false");
    SpringApplication.run(EngineApplication.class, args);
  }
}
