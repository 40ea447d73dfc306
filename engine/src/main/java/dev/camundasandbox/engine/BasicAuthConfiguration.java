package dev.camundasandbox.engine;

import jakarta.servlet.Filter;
import org.camunda.bpm.engine.rest.security.auth.ProcessEngineAuthenticationFilter;
import org.camunda.bpm.engine.rest.security.auth.impl.HttpBasicAuthenticationProvider;
import org.springframework.beans.factory.annotation.Value;
import org.springframework.boot.autoconfigure.condition.ConditionalOnProperty;
import org.springframework.boot.web.servlet.FilterRegistrationBean;
import org.springframework.context.annotation.Bean;
import org.springframework.context.annotation.Configuration;

/**
 * Optional HTTP Basic auth on the REST API, on only when
 * {@code sandbox.engine.auth=basic} (env ENGINE_AUTH=basic).
 *
 * <p>The REST starter has no property for this, so we register the REST
 * API's own authentication filter the way Camunda Run does. Users are the
 * engine's identity users, i.e. the admin user demo/demo from
 * {@code camunda.bpm.admin-user}.
 */
@Configuration
@ConditionalOnProperty(name = "sandbox.engine.auth", havingValue = "basic")
public class BasicAuthConfiguration {

  @Bean
  public FilterRegistrationBean<Filter> processEngineAuthenticationFilter(
      @Value("${spring.jersey.application-path:/engine-rest}") String restPath) {
    FilterRegistrationBean<Filter> registration =
        new FilterRegistrationBean<>(new ProcessEngineAuthenticationFilter());
    registration.setName("camunda-auth");
    registration.addInitParameter(
        ProcessEngineAuthenticationFilter.AUTHENTICATION_PROVIDER_PARAM,
        HttpBasicAuthenticationProvider.class.getName());
    // Stated rather than taken from the servlet path, so the filter strips
    // the right prefix however Jersey is mounted.
    registration.addInitParameter(ProcessEngineAuthenticationFilter.SERVLET_PATH_PREFIX, restPath);
    registration.addUrlPatterns(restPath + "/*");
    return registration;
  }
}
